"""The side flows of the conversation, each in its own module (see handlers/flow.py)."""

from __future__ import annotations

from handlers.admin_flow import AdminFlow
from handlers.broadcast_flow import BroadcastFlow
from handlers.campaign_admin_flow import CampaignAdminFlow
from handlers.coordinator_review import CoordinatorReview
from handlers.core_context import CoreContext
from handlers.flow import Routes
from handlers.history_flow import HistoryFlow
from handlers.notify_flow import NotifyFlow
from handlers.revision_flow import RevisionFlow
from handlers.status_flow import StatusFlow


def build_routes(core: CoreContext) -> Routes:
    routes = Routes()
    # each flow: routes.add(SomeFlow(core).routes())
    routes.add(CoordinatorReview(core).routes())
    routes.add(StatusFlow(core).routes())
    routes.add(NotifyFlow(core).routes())
    routes.add(BroadcastFlow(core).routes())
    routes.add(RevisionFlow(core).routes())
    routes.add(HistoryFlow(core).routes())
    routes.add(AdminFlow(core).routes())
    routes.add(CampaignAdminFlow(core).routes())
    return routes
