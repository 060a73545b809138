"""Universal perturbations on efficientnet_lite0: held-out fooling rate against time.

Crafts on the 250 crafting photos of the shared sample, reports on the 250 held-out
ones. SGD-UAP (ours, with augmentation), DeepFool-UAP (ours, batched) and ART's
UniversalPerturbation (DeepFool attacker, the same overshoot and candidate classes)
run side by side in one process on the same model, photos and bound.

    python benchmarks/uap.py                # full run (about 40 minutes on 2 CPU cores)
    python benchmarks/uap.py --quick        # minutes: smoke test of the harness

ART is needed for the comparison only: pip install adversarial-robustness-toolbox.
"""

from __future__ import annotations

import argparse
import time

import torch

import reprolab
from reprolab import data, uap

from common import RESULTS, write


def eval_steps(steps: int, every: int) -> set[int]:
    """Dense at the start (where ART's rate is crossed), then every ``every`` steps."""
    return {s for s in (2, 4, 6, 8, 10, 15, 20) if s < steps} | set(range(every, steps + 1, every)) | {steps}


def sgd_curve(model, craft, held_x, held_y, eps, steps, batch_size, eval_every, schedule):
    """SGD-UAP with held-out evaluations at :func:`eval_steps`; time excludes evaluation."""
    curve, evaluating = [], [0.0]  # seconds spent evaluating so far
    start = time.perf_counter()

    at = eval_steps(steps, eval_every)

    def evaluate(step, program):
        if step not in at:
            return {}
        t = time.perf_counter()
        crafting_seconds = t - start - evaluating[0]
        m = reprolab.evaluate_perturbation(model, program, held_x, held_y)
        evaluating[0] += time.perf_counter() - t
        curve.append({"step": step, "seconds": round(crafting_seconds, 2), **m})
        print(f"  SGD-UAP step {step}: held-out fooling {m['fooling_rate']:.3f} at {curve[-1]['seconds']} s", flush=True)
        return {"heldout_fooling_rate": m["fooling_rate"]}

    program, _ = uap.sgd_uap(model, craft, eps, steps=steps, batch_size=batch_size, progress=False,
                             schedule=schedule, log_every=eval_every, callback=evaluate, callback_every=1)
    return program, curve


def art_uap(model, craft, held_x, held_y, eps, passes, overshoot):
    from art.attacks.evasion import UniversalPerturbation
    from art.estimators.classification import PyTorchClassifier

    # ART pitfalls, handled: eps is in the classifier's input units (here [0, 1] pixels, as
    # ours); its DeepFool overshoot defaults to 1e-6 (set to the paper's 0.02); and its
    # fooling rate is computed against the y it is given, so we measure ours ourselves.
    model.check_inputs = False  # ART's DeepFool queries slightly out-of-range points; let it
    clf = PyTorchClassifier(model, loss=torch.nn.CrossEntropyLoss(), input_shape=tuple(craft.shape[1:]),
                            nb_classes=1000, clip_values=(0.0, 1.0))
    attack = UniversalPerturbation(clf, attacker="deepfool", attacker_params={"epsilon": overshoot, "nb_grads": 10, "verbose": False},
                                   delta=0.2, max_iter=passes, eps=eps, norm="inf", verbose=False)
    t = time.perf_counter()
    attack.generate(craft.numpy())
    seconds = time.perf_counter() - t
    model.check_inputs = True
    program = reprolab.AdditivePerturbation(craft.shape[-1], eps, parametrization="projected")
    with torch.no_grad():
        program.w.copy_(torch.as_tensor(attack.noise).view_as(program.w).clamp(-eps, eps))
    return {"seconds": round(seconds, 1), **reprolab.evaluate_perturbation(model, program, held_x, held_y)}


def time_to_reach(curve, target):
    return next((c["seconds"] for c in curve if c["fooling_rate"] >= target), None)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--model", default="efficientnet_lite0")
    p.add_argument("--eps", type=float, default=10 / 255)
    p.add_argument("--steps", type=int, default=800)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--schedule", default="cosine", choices=["constant", "cosine"])
    p.add_argument("--no-art", action="store_true")
    a = p.parse_args()
    steps, eval_every, n_df, n_held = (20, 10, 8, 50) if a.quick else (a.steps, 50, 64, 250)

    model = reprolab.load_model(a.model, device=reprolab.models.best_device())
    craft, _ = data.load_images(model=model, split="craft")
    held_x, held_y = data.load_images(model=model, split="heldout")
    held_x, held_y = held_x[:n_held], held_y[:n_held]
    result = {"model": a.model, "eps": a.eps, "norm": "inf", "crafting_images": len(craft),
              "heldout_images": len(held_y), "quick": a.quick}

    print(f"SGD-UAP, {steps} steps of {a.batch_size}, {a.schedule} lr, augmented crafting photos")
    program, curve = sgd_curve(model, craft, held_x, held_y, a.eps, steps, a.batch_size, eval_every, a.schedule)
    result["sgd_uap"] = {"steps": steps, "batch_size": a.batch_size, "schedule": a.schedule,
                         "curve": curve, "final": curve[-1]}
    reprolab.save_program(RESULTS / f"uap-sgd-{a.model}.safetensors", program, model=a.model,
                          method="sgd", **curve[-1])

    print(f"DeepFool-UAP (ours, batched) on {n_df} crafting photos, one pass")
    program, hist = uap.deepfool_uap(model, craft[:n_df], a.eps, max_passes=1, target_fooling=1.0, progress=False)
    result["deepfool_uap"] = {"crafting_images": n_df, "passes": 1, "seconds": round(hist.seconds, 1),
                              **reprolab.evaluate_perturbation(model, program, held_x, held_y)}
    print(f"  {result['deepfool_uap']}")

    if not a.no_art:
        print(f"ART UniversalPerturbation (DeepFool) on the same {n_df} photos, one pass")
        art = art_uap(model, craft[:n_df], held_x, held_y, a.eps, passes=1, overshoot=0.02)
        result["art_uap"] = {"crafting_images": n_df, "passes": 1, **art}
        ours = time_to_reach(curve, art["fooling_rate"])
        result["comparison"] = {
            "art_heldout_fooling_rate": art["fooling_rate"], "art_seconds": art["seconds"],
            "sgd_uap_seconds_to_reach_it": ours,
            "speedup_sgd_vs_art": None if not ours else round(art["seconds"] / ours, 1),
            "speedup_deepfool_vs_art_same_images": round(art["seconds"] / max(result["deepfool_uap"]["seconds"], 1e-9), 1)}
        print(f"  {result['comparison']}")
    write("uap-quick" if a.quick else "uap", result)


if __name__ == "__main__":
    main()
