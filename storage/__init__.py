# The export jobs table lives with its queries; importing it here puts it on Base.metadata
# wherever storage.models is used (create_all, Alembic).
from storage import export_jobs as _export_jobs  # noqa: F401
