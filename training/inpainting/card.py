"""The inpainting card's own sections: paper 002's Table 2 rows (map variants) and completion quality.

Beside the sections every map method shares (:data:`training.evaluation.DETECTION`):

* :class:`MapVariants`: every error (MSE, critic loss, DMSE) and heatmap (non-averaged, averaged)
  of paper 002 Table 2 with its ratio beside its null, image AUCs and the foreign-object check,
  under the paper's own numbers;
* :class:`CompletionQuality`: ROI completion of held-out normal tissue against scikit-image's
  biharmonic inpainting (:mod:`training.inpainting.completion_quality`).
"""
from __future__ import annotations

from inference.methods.inpainting import HEATMAPS, SCORES
from training.evaluation import DETECTION, CardSection
from training.evaluation.sections import Baseline, fmt, image_level, localisation


def biharmonic_baseline(context) -> dict:
    """scikit-image's biharmonic completion of the centre hole of every window the engine scores
    (same field of view, hole, stride and breast share), its MSE in the hole drawn by the engine's
    heatmap rule: what a learned completion must beat."""
    from inference.baselines import biharmonic_error_maps

    engine = context.engine
    stride = int(engine.spec.run_arguments(context.parameters)["stride"])
    fov, hole, min_breast = int(engine.fov), int(engine.hole), float(engine.min_breast)
    return {"name": "biharmonic completion error", "stride": stride, "fov": fov, "hole": hole,
            "description": f"MSE of scikit-image's biharmonic completion of the {hole} px centre hole of each "
                           f"{fov} px breast window (stride {stride}), the engine's windows and heatmap rule",
            "maps": lambda images, masks: biharmonic_error_maps(images, masks, fov=fov, hole=hole, stride=stride,
                                                                min_breast=min_breast)}


def paper_reference(engine) -> str:
    return ("Paper 002, Table 2 (non-averaged maps, Duke DBT, 2M iterations): DMSE 2.77 (1.79) at FOV 256 / "
            "hole 128, 2.54 (2.92) at 256 / 64; MSE 2.11 (1.01) and 1.93 (0.87); critic loss 1.46 (0.34) and "
            "1.47 (0.38): mean (std) of the inside / outside ratio over 70 cancers, without a null. This bundle: "
            f"FOV {engine.fov} / hole {engine.hole} at {engine.resolution} px.")


class MapVariants(CardSection):
    """Paper 002 Table 2's rows: each error and heatmap at the run's stride."""

    name = "variants"

    def measure(self, context):
        from training.evaluation.foreign_objects import FOREIGN_OBJECT_PATIENTS, object_check, object_images

        patients = int(context.option("object_patients", FOREIGN_OBJECT_PATIENTS))
        out = {}
        for score in SCORES:
            for kind in HEATMAPS:
                params = {**context.parameters, "score": score, "heatmap": kind}
                block = {"parameters": params, "localisation": localisation(context.data,
                                                                            context.maps(context.data, params)),
                         "image_level": image_level(context, params)}
                if patients:
                    objects, twins = object_images(context, patients)
                    block["foreign_objects"] = object_check(context.engine, objects, twins, patients, params)
                out[f"{score} {kind}"] = block
        out["paper_reference"] = paper_reference(context.engine)
        return out

    def markdown(self, block, report):
        lines = ["", "## Map variants (the Table 2 ratio: mean (std) and median over lesions, beside the same boxes "
                 "on normal images of the same view)", "", block.get("paper_reference", ""), "",
                 "| map | lesions | ratio mean (std) | null mean (std) | ratio median | null median | paired p | "
                 "paper-score AUC (95 % CI) | focal AUC (95 % CI) | clip ratio vs twin |",
                 "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        for name, v in block.items():
            if not isinstance(v, dict):
                continue
            paper, focal = v["image_level"]["paper"], v["image_level"]["focal"]
            fo = v.get("foreign_objects")
            clip = f"{fmt(fo['ratio_median'])} vs {fmt(fo['null_ratio_median'])}" if fo else "n/a"
            for cls, b in v["localisation"].items():
                if not b.get("n"):
                    continue
                first = cls == "overall"
                auc = (f"{fmt(paper['auc'])} ({fmt(paper['auc_ci'][0])}-{fmt(paper['auc_ci'][1])})" if first else
                       fmt((paper.get("per_class") or {}).get(cls, {}).get("auc")))
                fauc = (f"{fmt(focal['auc'])} ({fmt(focal['auc_ci'][0])}-{fmt(focal['auc_ci'][1])})" if first else
                        fmt((focal.get("per_class") or {}).get(cls, {}).get("auc")))
                lines.append(f"| {name if first else ''} | {cls} {b['n']} | {fmt(b['ratio_mean'])} "
                             f"({fmt(b['ratio_std'])}) | {fmt(b['null_ratio_mean'])} ({fmt(b['null_ratio_std'])}) | "
                             f"{fmt(b['ratio_median'])} | {fmt(b['null_ratio_median'])} | {fmt(b['p_value'], 3)} | "
                             f"{auc} | {fauc} | {clip if first else ''} |")
        return lines


class CompletionQuality(CardSection):
    """ROI completion of held-out normal tissue against biharmonic inpainting."""

    name = "completion_quality"

    def measure(self, context):
        from training.inpainting.completion_quality import completion_quality

        images = int(context.option("completion_images", 30))
        if not images:
            return None
        return completion_quality(context.engine, context.labels, split=context.split, images=images,
                                  progress=context.progress)

    def markdown(self, block, report):
        from training.inpainting.completion_quality import quality_markdown

        return quality_markdown(block)


SECTIONS = DETECTION + (Baseline(biharmonic_baseline), MapVariants(), CompletionQuality())
