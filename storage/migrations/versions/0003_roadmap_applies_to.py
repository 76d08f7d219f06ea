"""who a roadmap and its items apply to (roadmaps.applies_to, roadmap_items.applies_to)

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 22:40:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # NULL keeps the meaning of rows imported before: the roadmap covers every school of its
    # scope, an item applies as its roadmap does.
    with op.batch_alter_table("roadmaps", schema=None) as batch_op:
        batch_op.add_column(sa.Column("applies_to", sa.JSON(), nullable=True))
    with op.batch_alter_table("roadmap_items", schema=None) as batch_op:
        batch_op.add_column(sa.Column("applies_to", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("roadmap_items", schema=None) as batch_op:
        batch_op.drop_column("applies_to")
    with op.batch_alter_table("roadmaps", schema=None) as batch_op:
        batch_op.drop_column("applies_to")
