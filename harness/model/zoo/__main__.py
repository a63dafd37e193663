"""python -m sinkbench.model.zoo [VARIANT ...] [--steps N] [--no-series]: regenerate the zoo into
fixtures/zoo/ (and the checkpoint series of the variants in SERIES into fixtures/zoo/series/)."""
import argparse
from pathlib import Path

from .train import SERIES, SERIES_DIR, VARIANTS, TrainConfig, train


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m sinkbench.model.zoo", description=__doc__)
    ap.add_argument("variants", nargs="*", choices=[[], *VARIANTS], help="default: all")
    ap.add_argument("--steps", type=int, default=TrainConfig.steps)
    ap.add_argument("--out", default=None, help="folder for the final models (default fixtures/zoo)")
    ap.add_argument("--series-out", default=None, help="folder for the checkpoint series (default fixtures/zoo/series)")
    ap.add_argument("--no-series", action="store_true", help="do not save checkpoints during training")
    args = ap.parse_args()
    kw = {"out_dir": args.out} if args.out else {}
    for name in args.variants or list(VARIANTS):
        series = None if args.no_series or name not in SERIES else Path(args.series_out or SERIES_DIR)
        m = train(name, TrainConfig(steps=args.steps), series_dir=series, **kw)
        b = m["sink_behaviour"]
        print(f"[zoo] {name}: loss {m['final_train_loss']:.3f}, {m['wall_time_s']}s, copy head {b['copy_head']} "
              f"copy {b['copy_head_copy_score']:.2f}, sink attn (non-trigger) {b['copy_head_sink_attn_nontrigger']:.2f}"
              + (f"; checkpoints at steps {m['series']['steps']} in {m['series']['dir']}" if "series" in m else ""))


if __name__ == "__main__":
    main()
