"""Realistic web-server access logs for examples/log_aggregation.py, generated fast.

The Combined Log Format with the response time in microseconds at the end, as
Apache's ``%D`` writes it: skewed paths and clients (a few hot, a long tail),
a mix of statuses, heavy-tailed response times per endpoint, and about one
malformed line in a thousand of the kinds real logs hold. Deterministic for a
seed; one pool job per file.
"""

from __future__ import annotations

import bisect
import datetime
import functools
import itertools
import json
import os
import random
import re
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import minipool

# host ident user [time] "method target protocol" status bytes "referer" "agent" micros.
# No field may hold a newline, so one bad line never swallows the next.
LINE = re.compile(
    r'(\S+) \S+ \S+ \[[^\]\n]*\] "([A-Z]+) (\S+) [^"\n]*" ([1-5]\d\d) (\d+|-) '
    r'"[^"\n]*" "[^"\n]*" (\d+)'
)

# (weight, method, target, median µs, typical bytes, status weights). {id} is a
# skewed item or user id, {word} a search term.
ENDPOINTS = [
    (14, "GET", "/static/app.js", 900, 250_000, {200: 40, 304: 60}),
    (12, "GET", "/static/style.css", 700, 40_000, {200: 40, 304: 60}),
    (20, "GET", "/api/items/{id}", 12_000, 5_200, {200: 930, 404: 50, 500: 15, 503: 5}),
    (8, "GET", "/", 3_000, 14_000, {200: 90, 304: 10}),
    (8, "GET", "/api/search?q={word}", 80_000, 22_000, {200: 970, 400: 10, 500: 15, 504: 5}),
    (6, "GET", "/api/items/{id}/reviews", 25_000, 12_000, {200: 96, 404: 3, 500: 1}),
    (6, "GET", "/health", 150, 2, {200: 999, 503: 1}),
    (5, "GET", "/api/users/{id}/orders", 45_000, 8_000, {200: 88, 401: 7, 403: 3, 500: 2}),
    (5, "GET", "/api/items", 20_000, 48_000, {200: 98, 500: 2}),
    (5, "GET", "/favicon.ico", 300, 1_150, {200: 70, 304: 25, 404: 5}),
    (4, "POST", "/api/cart", 30_000, 350, {201: 85, 400: 8, 409: 4, 500: 3}),
    (3, "POST", "/login", 150_000, 120, {302: 70, 401: 28, 429: 2}),  # password hashing
    (1, "GET", "/wp-login.php", 400, 150, {404: 100}),  # scanners
]
AGENTS = [
    (
        40,
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/131.0.0.0 Safari/537.36",
    ),
    (
        20,
        "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
    ),
    (15, "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"),
    (10, "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"),
    (8, "okhttp/4.12.0"),
    (5, "curl/8.5.0"),
    (2, "python-requests/2.32.3"),
]
REFERERS = [
    (60, "-"),
    (25, "https://shop.example.com/"),
    (10, "https://www.google.com/"),
    (5, "https://shop.example.com/api/docs"),
]
WORDS = ["shoes", "lamp", "usb+c+cable", "desk", "coffee", "tent", "gift", "sale"]
CLIENTS = 5_000
MALFORMED_RATE = 0.001  # a bad line per thousand: rare, as in real logs, yet always some
DAY = int(datetime.datetime(2026, 11, 25, tzinfo=datetime.timezone.utc).timestamp())
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
FORMAT_VERSION = 1  # bump when the generator changes, so that old logs are not reused


def client_addresses(seed: int) -> list[str]:
    """The client population: the same for every file, so hot clients are hot everywhere."""
    rng = random.Random(seed)
    return [
        f"{rng.randrange(1, 224)}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
        for _ in range(CLIENTS)
    ]


def cumulative(weights: Iterable[float]) -> list[float]:
    """Cumulative weights, for ``random.choices(cum_weights=...)`` and ``bisect``."""
    return list(itertools.accumulate(weights))


def pick(rng: random.Random, table: list[tuple[int, str]], count: int) -> list[str]:
    """``count`` values drawn from a ``(weight, value)`` table."""
    weights = cumulative(weight for weight, _ in table)
    return rng.choices([value for _, value in table], cum_weights=weights, k=count)


@functools.lru_cache(maxsize=64)  # lines come in time order: each second is formatted once
def timestamp(second: int) -> str:
    """``[25/Nov/2026:10:00:00 +0000]`` without the brackets, in English whatever the locale."""
    moment = datetime.datetime.fromtimestamp(second, datetime.timezone.utc)
    return f"{moment.day:02d}/{MONTHS[moment.month - 1]}/{moment.year}:{moment:%H:%M:%S} +0000"


def fake_line(
    rng: random.Random, second: int, client: str, spec: tuple[Any, ...], agent: str, referer: str
) -> str:
    """One well-formed log line."""
    _, method, target, median, size, statuses = spec
    if "{" in target:
        # Pareto ids: a few hot items, a long tail of cold ones.
        item = int(rng.paretovariate(0.7) * 3) * 127 % 100_003
        target = target.format(id=item, word=rng.choice(WORDS))
    status = statuses[0][bisect.bisect(statuses[1], rng.random() * statuses[1][-1])]
    micros = int(median * rng.lognormvariate(0.0, 0.6))
    if rng.random() < 0.01:  # the heavy tail: a slow disk, a lock, a GC pause
        micros *= rng.randrange(5, 60)
    sent = "-" if status in (204, 304) else int(size * (0.5 + rng.random()))
    return (
        f'{client} - - [{timestamp(second)}] "{method} {target} HTTP/1.1" {status} {sent} '
        f'"{referer}" "{agent}" {micros}'
    )


def spoil(rng: random.Random, line: str) -> str:
    """Turn a good line into the kinds of bad ones real logs hold."""
    kind = rng.randrange(4)
    if kind == 0:  # truncated: a writer died mid-line
        bad = line[: rng.randrange(1, line.rindex('"'))]
    elif kind == 1:  # a TLS handshake sent to the plain-HTTP port
        bad = "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + "".join(
            chr(rng.randrange(256)) for _ in range(rng.randrange(8, 40))
        ).replace("\n", "")
    elif kind == 2:  # a number that is not one
        fields = line.rsplit(" ", 1)
        bad = f"{fields[0]} {rng.choice(['-', '1.5e3', 'NaN', '12ms'])}"
    else:  # the common log format, from a server whose config was never updated
        bad = line[: line.index('" ', line.index('"') + 1) + 1] + " 200 512"
    return bad if LINE.fullmatch(bad) is None else "garbage"


def write_log_file(job: tuple[str, int, int, int]) -> int:
    """A job: write one access log of ``lines`` lines for ``(seed, index)``; return its size."""
    path, lines, seed, index = job
    rng = random.Random(seed * 1_000_003 + index)
    clients = client_addresses(seed)
    client_weights = cumulative(1 / rank**1.1 for rank in range(1, CLIENTS + 1))
    # Each endpoint's status weights as (codes, cumulative weights), for bisect in fake_line.
    specs = [(*spec[:5], (list(spec[5]), cumulative(spec[5].values()))) for spec in ENDPOINTS]
    spec_weights = cumulative(spec[0] for spec in ENDPOINTS)
    batch = 20_000
    with open(path, "wb") as file:
        for first in range(0, lines, batch):
            count = min(batch, lines - first)
            picks = zip(
                rng.choices(clients, cum_weights=client_weights, k=count),
                rng.choices(specs, cum_weights=spec_weights, k=count),
                pick(rng, AGENTS, count),
                pick(rng, REFERERS, count),
                strict=True,
            )
            out = []
            for number, (client, spec, agent, referer) in enumerate(picks, first):
                line = fake_line(rng, DAY + number * 86_400 // lines, client, spec, agent, referer)
                if rng.random() < MALFORMED_RATE:
                    line = spoil(rng, line)
                out.append(line)
            file.write(("\n".join(out) + "\n").encode("latin-1"))
    return os.path.getsize(path)


def log_paths(directory: Path, files: int) -> list[Path]:
    """The names generated logs get: ``access-00.log`` and on."""
    return [directory / f"access-{index:02d}.log" for index in range(files)]


def generate_logs(
    directory: Path, lines: int, files: int, seed: int, workers: int | None
) -> list[Path]:
    """The log files for these options: reused if ``directory`` holds them, else written."""
    manifest_path = directory / "manifest.json"
    wanted = {"lines": lines, "files": files, "seed": seed, "format": FORMAT_VERSION}
    paths = log_paths(directory, files)
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, ValueError):
        manifest = {}
    sizes = [path.stat().st_size if path.exists() else None for path in paths]
    if manifest == {**wanted, "sizes": sizes}:
        print(f"reusing {files} log files in {directory}")
        return paths
    directory.mkdir(parents=True, exist_ok=True)
    manifest_path.unlink(missing_ok=True)  # written last: its presence means the logs are whole
    for old in log_paths(directory, int(manifest.get("files", 0))):
        old.unlink(missing_ok=True)  # only what an earlier run generated, nothing else
    began = time.perf_counter()
    counts = [lines // files + (index < lines % files) for index in range(files)]
    jobs = [(str(path), counts[index], seed, index) for index, path in enumerate(paths)]
    with minipool.Pool(workers) as pool:
        written = list(pool.map(write_log_file, jobs, chunksize=1))
    manifest_path.write_text(json.dumps({**wanted, "sizes": written}))
    print(
        f"generated {lines:,} lines ({sum(written) / 1e6:,.1f} MB) in {files} files in "
        f"{directory} in {time.perf_counter() - began:.1f} s"
    )
    return paths
