"""Forms as declarative data: YAML files, a pydantic schema and a pure engine."""

from forms.engine import (
    Answers,
    AnswerState,
    Context,
    FormEngine,
    IndicatorValue,
    ParseResult,
    Slot,
)
from forms.loader import (
    DATA_DIR,
    FormLoadError,
    form_checksum,
    latest,
    load_bundled,
    load_form,
)
from forms.schema import (
    CONTEXT_FLAGS,
    Choice,
    Condition,
    Constraint,
    Form,
    Indicator,
    MunicipalRule,
    Question,
    QuestionKind,
    RepeatGroup,
    Section,
)

__all__ = [
    "CONTEXT_FLAGS",
    "DATA_DIR",
    "AnswerState",
    "Answers",
    "Choice",
    "Condition",
    "Constraint",
    "Context",
    "Form",
    "FormEngine",
    "FormLoadError",
    "Indicator",
    "IndicatorValue",
    "MunicipalRule",
    "ParseResult",
    "Question",
    "QuestionKind",
    "RepeatGroup",
    "Section",
    "Slot",
    "form_checksum",
    "latest",
    "load_bundled",
    "load_form",
]
