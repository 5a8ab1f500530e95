"""Concept sources (image + noun phrases -> scored instance masks; issue 20), each equal to its own
library's path on a small random model saved in the official layout: transformers' Sam3Model with
its processor, SAM 3's own Sam3Processor text prompt, an OWLv2 / Grounding DINO detector with its
processor's post-processing whose boxes a SAM predictor turns into masks."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from family_models import clip_tokenizer, tiny_sam3_concepts
from sam_bench.detect.concept_sources import build_concept_source
from sam_bench.errors import ConfigError

pytest.importorskip("transformers", reason="transformers not installed (pip install '.[hf]')")
PHRASES = ["a cat", "person"]


@pytest.fixture(scope="module")
def coco_image(shared_data) -> np.ndarray:
    from sam_bench.data.registry import open_dataset

    image = open_dataset("coco", str(shared_data / "coco_mini")).get(0).load_image()
    return np.ascontiguousarray(image[::2, ::2])  # half size keeps the tests cheap


def assert_same(found, masks, scores, boxes) -> None:
    assert np.array_equal(found.masks, np.asarray(masks, bool))
    assert np.array_equal(found.scores, np.asarray(scores, np.float64))
    assert np.array_equal(found.boxes, np.asarray(boxes, np.float64).reshape(-1, 4))


# ---------------------------------------------------------------------------------------- hf Sam3Model
@pytest.fixture(scope="module")
def hf_sam3(tmp_path_factory):
    model, processor = tiny_sam3_concepts()
    directory = tmp_path_factory.mktemp("sam3_hf")
    model.save_pretrained(directory)
    processor.save_pretrained(directory)
    return model, processor, directory


def test_hf_sam3model_equals_processor_and_model(hf_sam3, coco_image):
    from sam_bench.models.hf import build_hf_model

    from transformers import Sam3Model

    _, processor, directory = hf_sam3
    # the checkpoint as transformers loads it (the model object that saved it can differ from it in
    # the last bit: with transformers 5.24 one score of 20 does)
    model = Sam3Model.from_pretrained(directory).eval()
    adapter = build_hf_model(str(directory))
    assert build_concept_source(adapter, None, None, torch.device("cpu")) is adapter
    adapter.min_score = 0.0  # every query, so all 20 instances are compared
    found = adapter.segment_concepts(coco_image, PHRASES)
    reference_scores = []
    for phrase, got in zip(PHRASES, found):
        # transformers' documented path, written plainly: one call with image and text.
        inputs = processor(images=coco_image, text=phrase, return_tensors="pt")
        with torch.no_grad():
            outputs = model(**inputs)
        result = processor.post_process_instance_segmentation(outputs, threshold=0.0, mask_threshold=0.5,
                                                              target_sizes=[coco_image.shape[:2]])[0]
        assert len(result["scores"]) == 20 and result["masks"].shape[1:] == coco_image.shape[:2]
        assert_same(got, result["masks"], result["scores"], result["boxes"])
        reference_scores.append(result["scores"])
    # The threshold is the processor's: strictly above min_score.
    adapter.min_score = float(reference_scores[0].median())
    kept = adapter.segment_concepts(coco_image, PHRASES[:1])[0]
    assert np.array_equal(kept.scores, found[0].scores[found[0].scores > adapter.min_score])
    assert 0 < len(kept.scores) < 20


# ---------------------------------------------------------------------------------------- sam3 package
def test_sam3_text_prompt_equals_sam3_processor(tmp_path, coco_image):
    pytest.importorskip("sam3", reason="sam3 not installed (pip install 'sam-bench[sam3]')")
    from PIL import Image
    from sam3.model.sam3_image_processor import Sam3Processor

    from sam_bench.models.sam3_build import build_sam3, pinning_skipped_on, to_official_layout
    from sam_bench.models.sam3_model import build_sam3_model
    from test_sam3 import SMALL

    torch.manual_seed(0)
    model = build_sam3(SMALL)
    path = tmp_path / "sam3_small_random.pt"
    torch.save(to_official_layout(model), path)
    adapter = build_sam3_model(str(path))
    assert build_concept_source(adapter, None, None, torch.device("cpu")) is adapter
    adapter.min_score = 0.0
    found = adapter.segment_concepts(coco_image, PHRASES[:1])  # one phrase: SAM 3's full-size DETR is slow on a CPU
    # sam3's own usage: set_image once, set_text_prompt per phrase (pinning skipped: no CUDA here).
    processor = Sam3Processor(model, device="cpu", confidence_threshold=0.0)
    with pinning_skipped_on(torch.device("cpu")):
        state = processor.set_image(Image.fromarray(coco_image))
        for phrase, got in zip(PHRASES, found):
            state = processor.set_text_prompt(phrase, state)
            assert len(state["scores"]) == 200
            assert_same(got, state["masks"][:, 0], state["scores"], state["boxes"])


# ---------------------------------------------------------------------------------------- detector + SAM
def tiny_owlv2():
    import transformers as T

    torch.manual_seed(3)
    small = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2)
    config = T.Owlv2Config(text_config=small, vision_config=dict(small, image_size=128, patch_size=16),
                           projection_dim=32)
    model = T.Owlv2ForObjectDetection(config).eval()
    with torch.no_grad():  # boxes near their grid cells and unsaturated scores (random ones hit 0 and 1)
        model.box_head.dense2.weight.mul_(0.01)
        model.class_head.logit_scale.weight.mul_(0.01)
        model.class_head.logit_shift.weight.mul_(0.01)
    return model, T.Owlv2Processor(T.Owlv2ImageProcessor(size={"height": 128, "width": 128}), clip_tokenizer())


def tiny_grounding_dino(vocab_dir):
    import transformers as T

    torch.manual_seed(4)
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", "a", "cat", "person"]
    (vocab_dir / "vocab.txt").write_text("\n".join(words) + "\n")  # a BERT vocabulary of the test's words
    swin = T.SwinConfig(embed_dim=16, depths=[1, 1, 1, 1], num_heads=[1, 1, 1, 1], window_size=4, image_size=64,
                        out_features=["stage2", "stage3", "stage4"])
    text = T.BertConfig(vocab_size=len(words), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=64)
    config = T.GroundingDinoConfig(backbone_config=swin, text_config=text, d_model=32, encoder_layers=1,
                                   decoder_layers=2, encoder_ffn_dim=64, decoder_ffn_dim=64, encoder_attention_heads=2,
                                   decoder_attention_heads=2, num_queries=30)
    processor = T.GroundingDinoProcessor(T.GroundingDinoImageProcessor(size={"shortest_edge": 64, "longest_edge": 96}),
                                         T.BertTokenizer(str(vocab_dir / "vocab.txt")))
    return T.GroundingDinoForObjectDetection(config).eval(), processor


@pytest.mark.parametrize("kind", ["owlv2", "grounding_dino"])
def test_detector_boxes_prompt_sam(kind, tmp_path, small_checkpoint, coco_image):
    from segment_anything import SamPredictor

    from sam_bench.models.sam import build_sam_model

    model, processor = tiny_owlv2() if kind == "owlv2" else tiny_grounding_dino(tmp_path)
    model.save_pretrained(tmp_path / kind)
    processor.save_pretrained(tmp_path / kind)
    sam = build_sam_model(str(small_checkpoint), decoder="official")
    source = build_concept_source(sam, f"transformers:{tmp_path / kind}", None, torch.device("cpu"))
    h, w = coco_image.shape[:2]
    # OWLv2 pads the image to a square at its bottom right: boxes are scaled by the square's side.
    size = (max(h, w),) * 2 if kind == "owlv2" else (h, w)
    inputs = processor(images=coco_image, text=[[PHRASES[0]]], return_tensors="pt")
    with torch.no_grad():
        outputs = model(**inputs)
    extra = {"input_ids": inputs["input_ids"]} if kind == "grounding_dino" else {}
    every = processor.post_process_grounded_object_detection(outputs, threshold=0.0, target_sizes=[size], **extra)[0]
    threshold = float(np.unique(every["scores"].numpy())[-7])  # about six boxes: each is checked one by one below
    result = processor.post_process_grounded_object_detection(outputs, threshold=threshold, target_sizes=[size],
                                                              **extra)[0]
    boxes = np.clip(result["boxes"].numpy().astype(np.float64), 0, [w, h, w, h])
    assert 6 <= len(boxes) <= 12 and len(np.unique(boxes.round(), axis=0)) > 1
    source.min_score = threshold
    found = source.segment_concepts(coco_image, PHRASES[:1])[0]
    assert np.array_equal(found.scores, result["scores"].numpy().astype(np.float64))
    assert np.array_equal(found.boxes, boxes)
    predictor = SamPredictor(sam.model)
    predictor.set_image(coco_image)
    for box, mask in zip(boxes, found.masks):
        logits = predictor.predict(box=box, multimask_output=False, return_logits=True)[0][0]
        # Batched and one-by-one decoding agree to 1e-4 in logits: only pixels that close to 0 may differ.
        assert np.array_equal(mask | (np.abs(logits) < 1e-4), (logits > 0) | (np.abs(logits) < 1e-4))


# ---------------------------------------------------------------------------------------- CLIP candidates
def test_clip_source_classifies_automatic_masks_among_the_phrases(tmp_path, tiny_model, coco_image):
    from sam_bench.amg import AmgSettings, AutomaticMaskGenerator
    from sam_bench.detect.candidates import AmgCandidates
    from sam_bench.detect.clip import CATEGORY_TEMPLATES, ClipScorer, load_clip, mask_crops, write_tiny_clip
    from sam_bench.detect.concept_sources import ClipConcepts

    image = np.ascontiguousarray(coco_image[::2, ::2])
    clip = load_clip("unused-for-a-directory", write_tiny_clip(tmp_path / "clip"))
    # A 4x4 point grid, no quality filters and no NMS keep the untrained model's automatic masks cheap and many.
    settings = AmgSettings(points_per_side=4, pred_iou_thresh=0.0, stability_score_thresh=0.0, box_nms_thresh=1.0)
    source = ClipConcepts(tiny_model, ClipScorer(clip, 1.5, True), AmgCandidates(AutomaticMaskGenerator(tiny_model, settings)))
    source.min_score = 0.0
    found = source.segment_concepts(image, PHRASES)
    # The same automatic masks, and CLIP's zero-shot probabilities written plainly with open_clip.
    records = AutomaticMaskGenerator(tiny_model, settings).generate(image, embedding=tiny_model.encode(image)).records
    masks = np.stack([r["segmentation"] for r in records])
    boxes = np.array([r["bbox"] for r in records], np.float64)
    boxes[:, 2:] += boxes[:, :2]
    normalize = torch.nn.functional.normalize
    with torch.no_grad():
        pixels = mask_crops(image, masks, boxes, clip.image_size, 1.5, True)
        crops = clip.model.encode_image((pixels - torch.tensor(clip.mean).view(1, 3, 1, 1))
                                        / torch.tensor(clip.std).view(1, 3, 1, 1))
        texts = torch.stack([normalize(normalize(clip.model.encode_text(
            clip.tokenizer([t.format(p) for t in CATEGORY_TEMPLATES])), dim=-1).mean(0), dim=-1) for p in PHRASES])
        probs = (clip.model.logit_scale.exp().double() * (texts @ normalize(crops, dim=-1).T).double()).softmax(0)
    assert len(records) > 1
    for phrase_probs, got in zip(probs.numpy(), found):
        keep = phrase_probs > 0.0
        assert np.array_equal(got.masks, masks[keep]) and np.array_equal(got.boxes, boxes[keep])
        assert np.allclose(got.scores, phrase_probs[keep], atol=1e-6)
    source.min_score = 0.5  # one phrase at most per mask
    assert sum(len(f.scores) for f in source.segment_concepts(image, PHRASES)) == int((probs > 0.5).sum())


# ---------------------------------------------------------------------------------------- errors
def test_a_model_without_text_says_what_to_pass(tiny_model):
    with pytest.raises(ConfigError, match="cannot segment noun phrases .* --detector transformers:DIR"):
        build_concept_source(tiny_model, None, None, torch.device("cpu"))
    with pytest.raises(ConfigError, match="not both"):
        build_concept_source(tiny_model, "transformers:x", "clip", torch.device("cpu"))


# ---------------------------------------------------------------------------------------- text task
def test_text_task_takes_sam3_instances_as_candidates(hf_sam3, synthetic_roots, tmp_path):
    """candidates=concepts: each phrase's answer is SAM 3's best-scoring instance for that phrase."""
    from sam_bench.config import RunConfig
    from sam_bench.data.registry import open_dataset
    from sam_bench.engine.context import RunContext
    from sam_bench.models.hf import build_hf_model
    from sam_bench.tasks.text.task import TextOptions, TextTask

    adapter = build_hf_model(str(hf_sam3[2]))
    dataset = open_dataset("demo", str(synthetic_roots["demo"]), limit=1)
    cfg = RunConfig(task="text", model="hf", dataset="demo", data_root=str(synthetic_roots["demo"]), out=str(tmp_path))
    ctx = RunContext(model=adapter, dataset=dataset, out_dir=tmp_path, device=torch.device("cpu"), config=cfg)
    task = TextTask(TextOptions(candidates="concepts", rank_by="concepts", ap_categories="none"))
    task.setup(ctx)
    sample = dataset.get(0)
    rows = task.evaluate_image(ctx, sample).rows
    assert len(rows) >= 2
    image = sample.load_image()
    for row, query in zip(rows, task.queries(sample)):
        found = adapter.segment_concepts(image, [row["phrase"]])[0]  # min_score 0 since setup
        best = int(np.argmax(found.scores))
        assert row["score"] == found.scores[best] and row["candidates"] == len(rows) * 20
        inter = np.count_nonzero(found.masks[best] & query.target)
        assert (row["intersection"], row["union"]) == (inter, np.count_nonzero(found.masks[best] | query.target))
    with pytest.raises(ConfigError, match="candidates=concepts only"):
        TextTask(TextOptions()).setup(ctx)
