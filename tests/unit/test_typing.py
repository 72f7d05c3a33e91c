"""The command handler is typed by its decider: mypy refuses another aggregate's command."""

from __future__ import annotations

from pathlib import Path

from mypy import api

ROOT = Path(__file__).resolve().parents[2]

SNIPPET = """\
from __future__ import annotations

from api.commands import execute
from api.context import Info
from domain import orders, users
from store.command_handler import CommandHandler


async def wrong(handler: CommandHandler, info: Info, command: users.RegisterUser) -> None:
    await handler.handle(orders.DECIDER, "o-1", command)  # refused
    await execute(info, orders.DECIDER, "o-1", command)  # refused
    print((await handler.load(orders.DECIDER, "o-1")).state.registered)  # refused


async def right(handler: CommandHandler, info: Info, command: users.RegisterUser) -> None:
    await handler.handle(users.DECIDER, "u-1", command)
    await execute(info, users.DECIDER, "u-1", command)
    print((await handler.load(users.DECIDER, "u-1")).state.registered)
"""


def test_mypy_refuses_a_users_command_sent_to_the_orders_decider(tmp_path: Path) -> None:
    snippet = tmp_path / "snippet.py"
    snippet.write_text(SNIPPET)
    report, errors, _ = api.run(
        [
            "--config-file",
            str(ROOT / "pyproject.toml"),
            "--cache-dir",
            str(tmp_path / "mypy_cache"),
            "--no-error-summary",
            str(snippet),
        ]
    )
    assert errors == ""
    refused = {
        number for number, line in enumerate(SNIPPET.splitlines(), 1) if line.endswith("# refused")
    }
    flagged = {
        int(line.split(":")[1]) for line in report.splitlines() if line.startswith(str(snippet))
    }
    assert flagged == refused, report
