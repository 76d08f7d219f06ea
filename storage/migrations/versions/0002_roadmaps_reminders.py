"""roadmaps, roadmap items, item completions and reminder deliveries

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 06:01:57.133603
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "roadmaps",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=100), nullable=False),
        sa.Column("title", sa.String(length=1000), nullable=False),
        sa.Column("level", sa.String(length=16), nullable=False),
        sa.Column("period_start", sa.Date(), nullable=False),
        sa.Column("period_end", sa.Date(), nullable=False),
        sa.Column("region_id", sa.Integer(), nullable=True),
        sa.Column("municipality_id", sa.Integer(), nullable=True),
        sa.Column("source", sa.String(length=500), nullable=True),
        sa.Column("checksum", sa.String(length=64), nullable=True),
        sa.Column("definition", sa.JSON(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("imported_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["municipality_id"],
            ["municipalities.id"],
            name=op.f("fk_roadmaps_municipality_id_municipalities"),
        ),
        sa.ForeignKeyConstraint(
            ["region_id"], ["regions.id"], name=op.f("fk_roadmaps_region_id_regions")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_roadmaps")),
        sa.UniqueConstraint("key", name=op.f("uq_roadmaps_key")),
    )
    op.create_table(
        "roadmap_items",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("roadmap_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.String(length=32), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("section", sa.String(length=500), nullable=True),
        sa.Column("action", sa.Text(), nullable=False),
        sa.Column("deadline_text", sa.String(length=500), nullable=False),
        sa.Column("deadline", sa.JSON(), nullable=True),
        sa.Column("due_date", sa.Date(), nullable=True),
        sa.Column("due_dates", sa.JSON(), nullable=False),
        sa.Column("executor_roles", sa.JSON(), nullable=False),
        sa.Column("executors", sa.Text(), nullable=True),
        sa.Column("level", sa.String(length=16), nullable=True),
        sa.Column("indicator", sa.Text(), nullable=True),
        sa.Column("evidence", sa.Text(), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["roadmap_id"], ["roadmaps.id"], name=op.f("fk_roadmap_items_roadmap_id_roadmaps")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_roadmap_items")),
        sa.UniqueConstraint("roadmap_id", "number", name="uq_roadmap_item"),
    )
    with op.batch_alter_table("roadmap_items", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_roadmap_items_due_date"), ["due_date"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_roadmap_items_roadmap_id"), ["roadmap_id"], unique=False
        )

    op.create_table(
        "item_completions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("item_id", sa.Integer(), nullable=False),
        sa.Column("respondent_key", sa.String(length=32), nullable=False),
        sa.Column("school_id", sa.Integer(), nullable=True),
        sa.Column("municipality_id", sa.Integer(), nullable=True),
        sa.Column("due_on", sa.Date(), nullable=False),
        sa.Column("done_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("done_by", sa.Integer(), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("evidence_name", sa.String(length=500), nullable=True),
        sa.Column("evidence_path", sa.String(length=500), nullable=True),
        sa.Column("evidence_sha256", sa.String(length=64), nullable=True),
        sa.Column("evidence_size", sa.BigInteger(), nullable=True),
        sa.Column("evidence_mime", sa.String(length=200), nullable=True),
        sa.Column("evidence_platform", sa.String(length=16), nullable=True),
        sa.Column("evidence_file_id", sa.String(length=300), nullable=True),
        sa.ForeignKeyConstraint(
            ["done_by"], ["people.id"], name=op.f("fk_item_completions_done_by_people")
        ),
        sa.ForeignKeyConstraint(
            ["item_id"],
            ["roadmap_items.id"],
            name=op.f("fk_item_completions_item_id_roadmap_items"),
        ),
        sa.ForeignKeyConstraint(
            ["municipality_id"],
            ["municipalities.id"],
            name=op.f("fk_item_completions_municipality_id_municipalities"),
        ),
        sa.ForeignKeyConstraint(
            ["school_id"], ["schools.id"], name=op.f("fk_item_completions_school_id_schools")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_item_completions")),
        sa.UniqueConstraint("item_id", "respondent_key", "due_on", name="uq_item_completion"),
    )
    with op.batch_alter_table("item_completions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_item_completions_item_id"), ["item_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_item_completions_school_id"), ["school_id"], unique=False
        )

    op.create_table(
        "deliveries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=24), nullable=False),
        sa.Column("item_id", sa.Integer(), nullable=True),
        sa.Column("campaign_id", sa.Integer(), nullable=True),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("platform", sa.String(length=16), nullable=False),
        sa.Column("offset_days", sa.Integer(), nullable=False),
        sa.Column("due_on", sa.Date(), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("send_until", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("claimed_by", sa.String(length=100), nullable=True),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_deliveries_account_id_accounts")
        ),
        sa.ForeignKeyConstraint(
            ["campaign_id"], ["campaigns.id"], name=op.f("fk_deliveries_campaign_id_campaigns")
        ),
        sa.ForeignKeyConstraint(
            ["item_id"], ["roadmap_items.id"], name=op.f("fk_deliveries_item_id_roadmap_items")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deliveries")),
        sa.UniqueConstraint("key", name=op.f("uq_deliveries_key")),
    )
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_deliveries_account_id"), ["account_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_deliveries_campaign_id"), ["campaign_id"], unique=False
        )
        batch_op.create_index("ix_deliveries_due", ["status", "due_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_deliveries_item_id"), ["item_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_deliveries_item_id"))
        batch_op.drop_index("ix_deliveries_due")
        batch_op.drop_index(batch_op.f("ix_deliveries_campaign_id"))
        batch_op.drop_index(batch_op.f("ix_deliveries_account_id"))

    op.drop_table("deliveries")
    with op.batch_alter_table("item_completions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_item_completions_school_id"))
        batch_op.drop_index(batch_op.f("ix_item_completions_item_id"))

    op.drop_table("item_completions")
    with op.batch_alter_table("roadmap_items", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_roadmap_items_roadmap_id"))
        batch_op.drop_index(batch_op.f("ix_roadmap_items_due_date"))

    op.drop_table("roadmap_items")
    op.drop_table("roadmaps")
