"""The read side's Prometheus metrics that only the read side can count.

The projections' positions, lags and statuses are read from the database when scraped
(api/metrics.py); what happens inside this process and leaves no row, a subscriber cut off
for falling behind, is counted here.
"""

from __future__ import annotations

from prometheus_client import Counter

SUBSCRIPTIONS_FELL_BEHIND = Counter(
    "chronicle_subscriptions_fell_behind",
    "Live subscriptions ended with FELL_BEHIND: too slow for their buffer, told to resume "
    "with `after`.",
)
