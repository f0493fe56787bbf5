"""The study's testbed facts, measured from the generated data alone (no training, no cells): per noise level and
seed, the share of exactly tied training pairs, the flip rate on decided pairs and the label ceiling
(``drdo_lib.study.testbed_facts``). Writes ``figures/<profile>/study_testbed.{csv,md}`` (the same table
``study.report`` writes beside the reading) and prints the Markdown section of the reading.

    python scripts/study_testbed.py --config configs/study.yaml
"""
from __future__ import annotations

import argparse


def main() -> None:
    from drdo_lib import study, study_reading
    from drdo_lib.config import load_profile
    from drdo_lib.run import Run
    from drdo_lib.tables import write_table

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default="configs/study.yaml")
    a = p.parse_args()
    run = Run.create(load_profile(a.config))
    cfg = run.config(study.StudyConfig, "study")
    facts = study.testbed_facts(run, cfg)
    files = write_table(facts, run.figures / "study_testbed", index=False)
    print("\n".join(study_reading.testbed_markdown(facts)))
    print("written:", ", ".join(str(f) for f in files))


if __name__ == "__main__":
    main()
