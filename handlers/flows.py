"""The side flows of the conversation, each in its own module (see handlers/flow.py)."""

from __future__ import annotations

from handlers.admin_flow import AdminFlow
from handlers.core_context import CoreContext
from handlers.flow import Routes


def build_routes(core: CoreContext) -> Routes:
    routes = Routes()
    # each flow: routes.add(SomeFlow(core).routes())
    routes.add(AdminFlow(core).routes())
    return routes
