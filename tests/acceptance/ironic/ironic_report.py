"""The Ironic tier's report: each step, its result and its time, grouped by section, with a
summary first — Markdown and HTML (test-output/ironic/) for a person to read instead of logs."""

from __future__ import annotations

import contextlib
import html
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Step:
    section: str
    name: str
    ok: bool
    seconds: float
    detail: str = ""      # the first line of the failure


class Report:
    def __init__(self) -> None:
        self.steps: list[Step] = []
        self.started = time.time()

    @contextlib.contextmanager
    def step(self, section: str, name: str) -> Iterator[None]:
        began = time.monotonic()
        try:
            yield
        except BaseException as exc:
            detail = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
            self.steps.append(Step(section, name, False, time.monotonic() - began, detail))
            raise
        self.steps.append(Step(section, name, True, time.monotonic() - began))

    def sections(self) -> dict[str, list[Step]]:
        grouped: dict[str, list[Step]] = {}
        for step in self.steps:
            grouped.setdefault(step.section, []).append(step)
        return grouped

    def title(self) -> str:
        passed = sum(step.ok for step in self.steps)
        stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(self.started))
        return f"Ironic acceptance: {passed} of {len(self.steps)} steps passed ({stamp})"

    def write(self, directory: Path) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "report.md").write_text(self.markdown())
        (directory / "report.html").write_text(self.html())
        return directory / "report.md"

    def markdown(self) -> str:
        lines = [f"# {self.title()}", "", "| section | steps passed | time |", "|---|---|---|"]
        for section, steps in self.sections().items():
            lines.append(f"| {section} | {sum(s.ok for s in steps)} of {len(steps)} | "
                         f"{sum(s.seconds for s in steps):.1f} s |")
        for section, steps in self.sections().items():
            lines += ["", f"## {section}", "", "| step | result | time |", "|---|---|---|"]
            lines += [f"| {s.name} | {'pass' if s.ok else '**FAIL** — ' + s.detail} | "
                      f"{s.seconds:.2f} s |" for s in steps]
        return "\n".join(lines) + "\n"

    def html(self) -> str:
        e = html.escape
        summary = "".join(
            f"<tr class={'ok' if all(s.ok for s in steps) else 'bad'}><td>{e(section)}</td>"
            f"<td>{sum(s.ok for s in steps)} of {len(steps)}</td>"
            f"<td class=t>{sum(s.seconds for s in steps):.1f} s</td></tr>"
            for section, steps in self.sections().items())
        parts = [f"<h1>{e(self.title())}</h1><table><tr><th>section<th>passed<th>time"
                 f"{summary}</table>"]
        for section, steps in self.sections().items():
            rows = "".join(
                f"<tr class={'ok' if s.ok else 'bad'}><td>{e(s.name)}</td>"
                f"<td>{'pass' if s.ok else 'FAIL: ' + e(s.detail)}</td>"
                f"<td class=t>{s.seconds:.2f} s</td></tr>" for s in steps)
            parts.append(f"<h2>{e(section)}</h2><table><tr><th>step<th>result<th>time"
                         f"{rows}</table>")
        return ("<!doctype html><meta charset=utf-8>"
                f"<title>{e(self.title())}</title><style>"
                "body{font:14px system-ui;margin:2em;max-width:70em}"
                "table{border-collapse:collapse;width:100%}"
                "td,th{padding:4px 10px;border-bottom:1px solid #ddd;text-align:left}"
                ".ok td:nth-child(2){color:#1a7f37}.bad td:nth-child(2){color:#cf222e;"
                "font-weight:bold}.t{text-align:right;font-variant-numeric:tabular-nums}"
                "</style>" + "".join(parts))
