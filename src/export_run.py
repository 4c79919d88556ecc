"""Export a reranked run as a leaderboard submission (MAGMaR / MultiVENT 2.0 test).

    python src/export_run.py RUN --queries QUERIES --out OUT [--format trec|json] [--depth 1000]
                             [--tag NAME] [--tiebreak FIRST_STAGE_RUN] [--allow-missing]

RUN and FIRST_STAGE_RUN: TREC run, or the official JSON `{qid: {doc_id: score}}` (by extension).
QUERIES: the split's queries, MultiVENT CSV (`Query_id,query`, .csv) or TSV (`qid<TAB>text`).
Every query gets its top `depth` documents, ties broken by the first stage, written with strictly
decreasing scores; a query missing from the run, or a run query not in QUERIES, is an error.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from rankvideo.data.official import (SUBMISSION_FORMATS, export_submission, read_queries_csv,
                                     read_queries_tsv)
from rankvideo.data.trec import FormatError, read_run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", help="reranked run (.trec/.txt TREC, .json official)")
    parser.add_argument("--queries", required=True, help="queries of the split (.csv MultiVENT, else TSV)")
    parser.add_argument("--out", required=True, help="submission file to write (atomically)")
    parser.add_argument("--format", default="trec", choices=SUBMISSION_FORMATS)
    parser.add_argument("--depth", type=int, default=1000, help="documents per query (default 1000)")
    parser.add_argument("--tag", default="rankvideo", help="run tag, the TREC run's last column")
    parser.add_argument("--tiebreak", help="first-stage run that orders equal scores")
    parser.add_argument("--allow-missing", action="store_true",
                        help="log queries without a ranking instead of failing")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        reader = read_queries_csv if Path(args.queries).suffix.lower() == ".csv" else read_queries_tsv
        queries = reader(args.queries)
        summary = export_submission(read_run(args.run), queries, args.out, fmt=args.format,
                                    depth=args.depth, tag=args.tag,
                                    tiebreak=read_run(args.tiebreak) if args.tiebreak else None,
                                    allow_missing=args.allow_missing)
    except (FormatError, ValueError, FileNotFoundError) as exc:
        print(f"export_run: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
