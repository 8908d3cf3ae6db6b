"""Screenshot of a run report (or any page) in headless Chromium, for people to look at.

Usage: python -m reporting.screenshot outputs/reports/run-<id>.html report.png [--width 1200]

The whole page is captured, not just the first screen. The command also prints any console
error, uncaught exception or failed request the page had, and exits 1 if there was one.
"""

from __future__ import annotations

import argparse
import pathlib
import sys

from reporting.browser import BrowserError, open_page


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("page", help="an HTML file or a URL")
    parser.add_argument("png", help="where to write the screenshot")
    parser.add_argument("--width", type=int, default=1200)
    args = parser.parse_args()
    url = args.page if "://" in args.page else pathlib.Path(args.page).resolve().as_uri()
    try:
        result = open_page(url, screenshot=True, width=args.width)
    except BrowserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    pathlib.Path(args.png).write_bytes(result.screenshot_png)
    print(f"wrote {args.png} ({len(result.screenshot_png)} bytes)")
    for problem in result.errors:
        print(f"page error: {problem}", file=sys.stderr)
    return 1 if result.errors else 0


if __name__ == "__main__":
    sys.exit(main())
