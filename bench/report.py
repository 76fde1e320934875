"""The report: the targets of issue #6 checked against the figures, and a plain-text table of everything."""

import json
from pathlib import Path

# (name, shop figure path, ceiling figure path, minimum ratio) -- paths into the results dict.
TARGETS = [
    (
        "product page rate >= 70% of the minimal template page",
        "pages.product_page.rps",
        "ceilings.template_page.rps",
        0.70,
    ),
    (
        "add to cart rate >= 50% of the minimal one-row page",
        "pages.add_to_cart.rps",
        "ceilings.one_row_page.rps",
        0.50,
    ),
    (
        "orders accepted/s (hot) >= 50% of the minimal checkout POST (hot)",
        "checkout.hot.orders_per_s",
        "ceilings.checkout_hot.rps",
        0.50,
    ),
    (
        "orders accepted/s (spread) >= 50% of the minimal checkout POST (spread)",
        "checkout.spread.orders_per_s",
        "ceilings.checkout_spread.rps",
        0.50,
    ),
    (
        "orders accepted/s on the hot variant >= 90% of spread",
        "checkout.hot.orders_per_s",
        "checkout.spread.orders_per_s",
        0.90,
    ),
]


def get(data: dict, path: str):
    for part in path.split("."):
        if not isinstance(data, dict) or part not in data:
            return None
        data = data[part]
    return data


def ratio(numerator, denominator) -> float | None:
    if numerator is None or not denominator:
        return None
    return round(numerator / denominator, 3)


def evaluate(results: dict) -> list[dict]:
    """Every target with its figures, ratio and verdict (None when a figure was not measured)."""
    verdicts = []
    for name, shop, ceiling, minimum in TARGETS:
        value = ratio(get(results, shop), get(results, ceiling))
        verdicts.append(
            {
                "target": name,
                "ratio": value,
                "minimum": minimum,
                "met": None if value is None else value >= minimum,
            }
        )
    product_p99 = get(results, "pages.product_page.p99_ms")
    verdicts.append(
        {
            "target": "product page p99 < 100 ms at that load",
            "value_ms": product_p99,
            "met": None if product_p99 is None else product_p99 < 100,
        }
    )
    drop = results.get("drop") or {}
    p99 = get(drop, "place_to_paid.p99_s")
    censored = get(drop, "place_to_paid.unpaid_at_cutoff") or 0
    verdicts.append(
        {
            "target": "p99 place order -> paid <= 10 s through the drop (300 ms gateway)",
            "value_s": p99,
            "unpaid_at_cutoff": censored,
            "met": None if p99 is None else (p99 <= 10 and not censored),
        }
    )
    left = get(drop, "ten_seconds_after_last_order")
    verdicts.append(
        {
            "target": "nothing left in the queue 10 s after the last order",
            "value": left,
            "met": None if left is None else not any(left.values()),
        }
    )
    room = get(results, "waiting_room.runs") or []
    if room:
        worst = max((run.get("place_p99_vs_1x") or 0 for run in room), default=0)
        verdicts.append(
            {
                "target": "waiting room: admitted shoppers' place-order p99 within 2x of the 1x figure at 4x, 16x",
                "value": worst,
                "met": worst <= 2 if worst else None,
            }
        )
    checks = results.get("correctness") or {}
    verdicts.append(
        {
            "target": "zero oversell, zero double charge, zero lost orders (every check of the run)",
            "met": None if not checks else all(check["ok"] for check in checks.values()),
        }
    )
    return verdicts


def _n(value, digits: int = 0, unit: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}{unit}"
    return f"{value:,}{unit}"


def _pct(value) -> str:
    return "-" if value is None else f"{value * 100:.0f}%"


def _share(drop: dict, label: str) -> float | None:
    counts = {name: figures.get("count", 0) for name, figures in (drop.get("requests") or {}).items()}
    total = sum(counts.values())
    return counts.get(label, 0) / total if total else None


def _row(cells: list[str], widths: list[int]) -> str:
    return "  ".join(
        cell.ljust(width) if i == 0 else cell.rjust(width)
        for i, (cell, width) in enumerate(zip(cells, widths, strict=False))
    )


def _table(title: str, header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = [title, _row(header, widths), _row(["-" * w for w in widths], widths)]
    lines += [_row(r, widths) for r in rows]
    return [*lines, ""]


def render(results: dict) -> str:
    """The whole report as text."""
    meta = results["meta"]
    lines = [
        f"Storefront flash-sale bench  {meta['started_utc']}  mode={meta['mode']}  ({meta['command']})",
        f"tree: {meta.get('git', '?')}",
        f"K={meta['units']} units  shoppers={meta['shoppers']}  rq workers={meta['workers']}  gateway latency="
        f"{meta['latency']} s  gunicorn workers={meta['web_concurrency']}  connections={meta['connections']}"
        f"  window={meta['duration']} s x{meta['repeat']}",
        f"machine: {meta['cpus']} CPUs; load average at start {meta['loadavg_start']}; other processes used "
        f"{_n(meta.get('other_cores_avg'), 2)} cores on average during the run (noise: absolute figures drift, "
        "compare ratios)",
        "",
    ]
    c = results.get("ceilings") or {}
    s = results.get("pages") or {}
    k = results.get("checkout") or {}
    rows = []

    def fig(label, shop, ceiling=None, ceiling_name="", cpu_key="server_cpu_ms"):
        rows.append(
            [
                label,
                _n(get(shop, "rps") if shop else None, 0),
                _n(get(shop, "p50_ms") if shop else None, 1),
                _n(get(shop, "p99_ms") if shop else None, 1),
                _n(get(shop, cpu_key) if shop else None, 2),
                ceiling_name,
                _n(get(ceiling, "rps") if ceiling else None, 0),
                _pct(ratio(get(shop, "rps") if shop else None, get(ceiling, "rps") if ceiling else None)),
                _pct(ratio(get(ceiling, cpu_key) if ceiling else None, get(shop, cpu_key) if shop else None)),
            ]
        )

    fig("nginx static page (HTTP ceiling)", c.get("nginx"))
    fig("minimal Flask template page", c.get("template_page"), c.get("nginx"), "nginx")
    fig("minimal Flask page + one ORM row", c.get("one_row_page"), c.get("template_page"), "template")
    fig("minimal checkout POST, hot row", c.get("checkout_hot"))
    fig("minimal checkout POST, spread", c.get("checkout_spread"), c.get("checkout_hot"), "hot")
    for key, label in (
        ("pgbench_hot", "pgbench place-order SQL, hot row"),
        ("pgbench_spread", "pgbench, spread"),
    ):
        pg = c.get(key)
        if pg:
            rows.append(
                [label, _n(pg.get("tps"), 0), _n(pg.get("latency_avg_ms"), 1), "-", "-", "", "", "", ""]
            )
    fig("shop: product page (drop's)", s.get("product_page"), c.get("template_page"), "template")
    fig("shop: listing /products", s.get("listing"), c.get("one_row_page"), "one row")
    fig("shop: add to cart", s.get("add_to_cart"), c.get("one_row_page"), "one row")
    for key in ("hot", "spread"):
        data = k.get(key)
        if data:
            shop = {
                **(data.get("place_order") or {}),
                "rps": data.get("orders_per_s"),
                "server_cpu_ms": data.get("server_cpu_ms"),
            }
            fig(f"shop: place order only, {key}", shop, c.get(f"checkout_{key}"), f"ceiling {key}")
    lines += _table(
        "Rates (req/s or orders/s) and latency; server CPU = gunicorn + PostgreSQL CPU ms per request",
        ["measurement", "rate/s", "p50 ms", "p99 ms", "CPU ms", "vs", "ceiling/s", "ratio", "CPU ratio"],
        rows,
    )
    nginx = c.get("nginx") or {}
    if nginx.get("client_cpu_us") and nginx.get("rps"):
        client = nginx["client_cpu_us"] * nginx["rps"] / 1e6
        lines.insert(
            len(lines) - 1,
            f"  ratio = rate / ceiling's rate (the targets); CPU ratio = ceiling's CPU per request / ours, the same "
            "comparison\n  from CPU time, which the machine's other load disturbs much less than rates. nginx keeps "
            "connections alive,\n  gunicorn's sync workers close each one; the nginx figure is this Python load "
            f"generator's limit (it used {client:.2f} cores), not nginx's.",
        )
    census = results.get("census")
    if census:
        rows = [
            [
                name,
                _n(step.get("pg_round_trips"), 0),
                _n(step.get("redis_round_trips"), 0),
                _n(step.get("python_cpu_ms"), 1),
                ", ".join(
                    f"{k.removeprefix('pg ')} {v:g}"
                    for k, v in step["detail"].items()
                    if k.startswith("pg ") and k not in ("pg SELECT",)
                ),
            ]
            for name, step in census.items()
        ]
        lines += _table(
            "Round trips per request (Flask test client in one process; SELECTs not itemized)",
            ["step", "PostgreSQL", "Redis", "Python CPU ms", "besides the SELECTs"],
            rows,
        )
    drop = results.get("drop")
    if drop:
        ptp = drop.get("place_to_paid") or {}
        ten = drop.get("ten_seconds_after_last_order") or {}
        rows = [
            ["units K / orders accepted / paid", f"{drop['units']} / {drop['accepted']} / {drop['paid']}"],
            ["orders accepted per second (whole visits)", _n(drop.get("accepted_per_s"), 1)],
            ["orders paid per second", _n(drop.get("paid_per_s"), 1)],
            [
                "place order -> paid p50 / p99 (DB clock)",
                f"{_n(ptp.get('p50_s'), 2)} s / {_n(ptp.get('p99_s'), 2)} s"
                + (
                    f"  ({ptp['unpaid_at_cutoff']} still unpaid at the {drop['pace_wait_s']} s cut-off: p99 is a floor)"
                    if ptp.get("unpaid_at_cutoff")
                    else ""
                ),
            ],
            [
                "10 s after the last order: payment jobs / e-mail jobs queued / orders pending",
                f"{ten.get('payments_queued', '-')} / {ten.get('default_queued', '-')} / {ten.get('pending_orders', '-')}",
            ],
            [
                "every order paid, after the last order, at the real latency",
                f"{drop['paid_all_after_s']:.1f} s"
                if drop.get("paid_all_after_s") is not None
                else f"not within {drop['pace_wait_s']} s (then drained with latency 0)",
            ],
            [
                "requests p99: product / add / checkout page / place / status",
                " / ".join(
                    _n(get(drop, f"requests.{label}.p99_ms"), 0)
                    for label in (
                        "product_page",
                        "add_to_cart",
                        "checkout_page",
                        "place_order",
                        "order_status",
                    )
                )
                + " ms",
            ],
            ["visits ending sold out / errors", f"{drop['sold_out_seen']} / {drop['errors']}"],
            [
                "requests made: product / add / checkout / place / status polls",
                " / ".join(
                    _n(get(drop, f"requests.{label}.count"), 0)
                    for label in (
                        "product_page",
                        "add_to_cart",
                        "checkout_page",
                        "place_order",
                        "order_status",
                    )
                )
                + f"  (polls are {_pct(_share(drop, 'order_status'))} of all requests)",
            ],
            [
                "stock min available sampled / at end",
                f"{drop.get('min_available_sampled')} / {drop.get('available_at_end')}",
            ],
        ]
        lines += _table(
            f"The drop: {drop['shoppers']} shoppers at a time, {drop['workers']} rq workers",
            ["figure", "value"],
            rows,
        )
    sweep = results.get("worker_sweep")
    if sweep:
        rows = [
            [
                str(step["workers"]),
                _n(step.get("paid_per_s"), 1),
                _n(step.get("per_worker_per_s"), 2),
                _n(step.get("cpu_ms_per_payment"), 1),
                _n(step.get("busy_cores"), 2),
                "yes" if step.get("queue_ran_dry") else "",
            ]
            for step in sweep["steps"]
        ]
        lines += _table(
            f"Payments at {results['meta']['latency']} s gateway latency by rq worker count (SimpleWorker, a batch of charges in flight each)",
            ["workers", "paid/s", "per worker", "CPU ms/payment", "cores busy", "ran dry"],
            rows,
        )
        if sweep.get("needed"):
            lines += [f"  {sweep['needed']}", ""]
    scale = results.get("scale_shoppers")
    if scale:
        rows = [
            [
                f"{run['multiple']}x ({run['shoppers']})",
                _n(run.get("accepted_per_s"), 1),
                _n(get(run, "place_order.p50_ms"), 0),
                _n(get(run, "place_order.p99_ms"), 0),
                _n(get(run, "product_page.p99_ms"), 0),
                str(run.get("errors")),
            ]
            for run in scale
        ]
        lines += _table(
            "How cost grows with shoppers (whole visits, hot variant)",
            ["shoppers", "orders/s", "place p50 ms", "place p99 ms", "product p99 ms", "errors"],
            rows,
        )
    room = get(results, "waiting_room.runs")
    if room:
        rows = [
            [
                f"{run['multiple']}x ({run['shoppers']})",
                _n(run.get("accepted_per_s"), 1),
                _n(get(run, "place_order.p99_ms"), 0),
                _n(run.get("place_p99_vs_1x"), 2),
                str(run.get("waited")),
                _n(get(run, "eta.actual_wait.p50_s"), 1),
                _n(get(run, "eta.abs_error.p50_s"), 1),
                _n(get(run, "eta.abs_error.p99_s"), 1),
                _n(get(run, "waiting_page.p99_ms"), 0),
                str(run.get("errors")),
            ]
            for run in room
        ]
        settings = results["waiting_room"]
        lines += _table(
            f"Through the waiting room (admit {settings['rate']}/s, cap {settings['cap']}, reloads as the page says; "
            "ETA error = |actual wait - the first estimate shown|)",
            [
                "shoppers",
                "orders/s",
                "place p99 ms",
                "vs 1x",
                "waited",
                "wait p50 s",
                "ETA err p50 s",
                "ETA err p99 s",
                "waiting page p99 ms",
                "errors",
            ],
            rows,
        )
    catalog = results.get("scale_catalog")
    if catalog:
        rows = []
        for page in ("product_page", "listing", "category", "search"):
            small, big = get(catalog, f"small.{page}"), get(catalog, f"big.{page}")
            rows.append(
                [
                    page,
                    _n(get(small, "rps"), 0),
                    _n(get(small, "server_cpu_ms"), 2),
                    _n(get(big, "rps"), 0),
                    _n(get(big, "server_cpu_ms"), 2),
                    _pct(ratio(get(big, "rps"), get(small, "rps"))),
                ]
            )
        lines += _table(
            f"Page cost by catalog size ({catalog['small']['products']:,} vs {catalog['big']['products']:,} products; snapshot cache off)",
            ["page", "req/s small", "CPU ms", "req/s big", "CPU ms", "big/small"],
            rows,
        )
    checks = results.get("correctness") or {}
    if checks:
        rows = [
            [name, "ok" if check["ok"] else "FAIL", str(check.get("detail", ""))[:110]]
            for name, check in checks.items()
        ]
        lines += _table("Correctness", ["check", "result", "detail"], rows)
    verdicts = results.get("targets") or []
    rows = []
    for v in verdicts:
        value = v.get("ratio")
        shown = (
            _pct(value)
            if "ratio" in v
            else _n(v.get("value_ms") if "value_ms" in v else v.get("value_s"), 2)
            if ("value_ms" in v or "value_s" in v)
            else str(v.get("value", ""))
        )
        rows.append([v["target"], shown, {True: "met", False: "NOT MET", None: "not measured"}[v["met"]]])
    lines += _table("Targets (issue #6)", ["target", "figure", "verdict"], rows)
    return "\n".join(lines)


def write(results: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(results, indent=2, default=str) + "\n")
    tmp.replace(path)
