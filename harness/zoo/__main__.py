"""python -m harness.zoo [VARIANT ...] [--steps N]: regenerate the zoo into fixtures/zoo/."""
import argparse

from .train import VARIANTS, TrainConfig, train


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m harness.zoo", description=__doc__)
    ap.add_argument("variants", nargs="*", choices=[[], *VARIANTS], help="default: all")
    ap.add_argument("--steps", type=int, default=TrainConfig.steps)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    kw = {"out_dir": args.out} if args.out else {}
    for name in args.variants or list(VARIANTS):
        m = train(name, TrainConfig(steps=args.steps), **kw)
        b = m["sink_behaviour"]
        print(f"[zoo] {name}: loss {m['final_train_loss']:.3f}, {m['wall_time_s']}s, copy head {b['copy_head']} "
              f"copy {b['copy_head_copy_score']:.2f}, sink attn (non-trigger) {b['copy_head_sink_attn_nontrigger']:.2f}")


if __name__ == "__main__":
    main()
