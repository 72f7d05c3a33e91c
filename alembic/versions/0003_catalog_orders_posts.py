"""Read models of products, orders (with their lines) and posts (with their comments).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE products_view (
            id          text PRIMARY KEY,
            sku         text NOT NULL,
            name        text NOT NULL,
            price_cents integer NOT NULL,
            on_hand     integer NOT NULL,
            reserved    integer NOT NULL,
            version     integer NOT NULL,
            created_at  timestamptz NOT NULL,
            updated_at  timestamptz NOT NULL,
            search      tsvector GENERATED ALWAYS AS (
                to_tsvector('simple', sku || ' ' || name)
            ) STORED
        )
        """
    )
    op.execute("CREATE INDEX products_view_search_idx ON products_view USING gin (search)")
    op.execute("CREATE INDEX products_view_created_idx ON products_view (created_at, id)")
    op.execute(
        """
        CREATE TABLE orders_view (
            id                  text PRIMARY KEY,
            customer_id         text NOT NULL,
            status              text NOT NULL,
            total_cents         bigint NOT NULL,
            shipping_address    jsonb NOT NULL,
            paid_cents          bigint NOT NULL,
            carrier             text,
            tracking_number     text,
            signed_by           text,
            rejection_reason    text,
            cancellation_reason text,
            version             integer NOT NULL,
            created_at          timestamptz NOT NULL,
            updated_at          timestamptz NOT NULL
        )
        """
    )
    op.execute("CREATE INDEX orders_view_customer_idx ON orders_view (customer_id, created_at, id)")
    op.execute("CREATE INDEX orders_view_status_idx ON orders_view (status, created_at, id)")
    op.execute("CREATE INDEX orders_view_created_idx ON orders_view (created_at, id)")
    op.execute(
        """
        CREATE TABLE order_lines_view (
            order_id         text NOT NULL,
            product_id       text NOT NULL,
            line_number      integer NOT NULL,
            sku              text NOT NULL,
            name             text NOT NULL,
            quantity         integer NOT NULL,
            unit_price_cents integer NOT NULL,
            PRIMARY KEY (order_id, product_id)
        )
        """
    )
    op.execute(
        """
        CREATE TABLE posts_view (
            id         text PRIMARY KEY,
            author_id  text NOT NULL,
            message    text NOT NULL,
            liked_by   text[] NOT NULL DEFAULT '{}',
            deleted    boolean NOT NULL DEFAULT false,
            version    integer NOT NULL,
            created_at timestamptz NOT NULL,
            updated_at timestamptz NOT NULL
        )
        """
    )
    op.execute("CREATE INDEX posts_view_author_idx ON posts_view (author_id, created_at, id)")
    op.execute("CREATE INDEX posts_view_created_idx ON posts_view (created_at, id)")
    op.execute(
        """
        CREATE TABLE post_comments_view (
            post_id    text NOT NULL,
            comment_id text NOT NULL,
            author_id  text NOT NULL,
            text       text NOT NULL,
            created_at timestamptz NOT NULL,
            updated_at timestamptz NOT NULL,
            PRIMARY KEY (post_id, comment_id)
        )
        """
    )


def downgrade() -> None:
    for table in (
        "post_comments_view",
        "posts_view",
        "order_lines_view",
        "orders_view",
        "products_view",
    ):
        op.execute(f"DROP TABLE {table}")
