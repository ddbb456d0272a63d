"""What row-level security costs a team database: the app's reads as the owner (no RLS) and as a rater.

Starts a throw-away PostgreSQL server (as the tests do), catalogues N slices, gives three annotators and
a reviewer a label on each and the active model a prediction on each, then times the reads a workstation
makes: an annotator's own labels (worklist), the overlays of a 20-slice series (labels, model suggestion
"after own grade", which makes the server check her grade per slice), and a reviewer's disagreement queue.
Usage: python benchmarks/team_rls.py [--slices 5000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ (the throw-away server)

from annotator.domain.entities import LabelAction, ModelKind, ModelSuggestion, Prediction, Role  # noqa: E402
from annotator.services import project  # noqa: E402
from annotator.services import team as team_service  # noqa: E402
from annotator.services.review import disagreement_queue  # noqa: E402
from annotator.services.viewing import ViewingService  # noqa: E402
from annotator.storage import catalog, labels, models_repo, people  # noqa: E402
from tests.factories import instance  # noqa: E402
from tests.team_server import team_server  # noqa: E402


def timed(work: Callable[[], object], repeats: int) -> float:
    work()  # warm: connection pool, plans
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        work()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--slices", type=int, default=5000)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    server = team_server()
    name = server.new_database()
    team_service.init(server.owner_url(name))
    owner = project.open_project(server.owner_url(name))
    raters = {n: team_service.add_rater(owner, n, role, "benchmark-pw")
              for n, role in (("a1", Role.ANNOTATOR), ("a2", Role.ANNOTATOR), ("a3", Role.ANNOTATOR),
                              ("rev", Role.REVIEWER))}
    per_series = 20
    catalog.import_instances(owner, [instance(i % per_series, series=i // per_series) for i in range(args.slices)])
    ims = [im.id for im in catalog.images(owner)]
    for k, who in enumerate(("a1", "a2", "a3")):
        labels.add_versions_bulk(owner, [(im, raters[who].id, 10.0 + k, 10.0, (i + k) % 4)
                                         for i, im in enumerate(ims)], scale_code="lee", action=LabelAction.SET)
    model = models_repo.register(owner, name="m", preset="fast", target="consensus", kind=ModelKind.TRAIN,
                                 weights_path="/nonexistent", weights_sha256="0" * 64, card={})
    models_repo.write_predictions(owner, model.id, [Prediction(model.id, im, 10.0, 10.0, 1, (0.2, 0.5, 0.2, 0.1))
                                                    for im in ims])
    models_repo.activate(owner, model.id)
    people.update_settings(owner, None, model_suggestion=ModelSuggestion.AFTER_OWN_GRADE)
    ann = project.open_project(server.rater_url(name, "a1", "benchmark-pw"))
    rev = project.open_project(server.rater_url(name, "rev", "benchmark-pw"))
    series = ims[per_series * 3: per_series * 4]
    rows = [
        ("a1's labels (worklist)", lambda db: labels.current(db, rater_ids=[raters["a1"].id]), ann),
        ("a1's overlays, 20 slices", lambda db: ViewingService(db, raters["a1"]).overlays(series), ann),
        ("reviewer's queue", lambda db: disagreement_queue(db, raters["rev"]), rev),
    ]
    print(f"PostgreSQL team database, {args.slices} slices, 3 annotators + model on each; median of "
          f"{args.repeats} (ms)")
    print(f"{'read':28} {'owner (no RLS)':>15} {'rater (RLS)':>12} {'ratio':>7}")
    for label, work, db in rows:
        plain = timed(lambda w=work: w(owner), args.repeats)
        secured = timed(lambda w=work, d=db: w(d), args.repeats)
        print(f"{label:28} {plain:15.1f} {secured:12.1f} {secured / plain:7.2f}")
    for db in (ann, rev, owner):
        db.close()


if __name__ == "__main__":
    main()
