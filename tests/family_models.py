"""Small random models of each family, built with the family's own classes, and the
transformers reference path (shared by the fidelity tests and benchmarks/families.py)."""
from __future__ import annotations

from functools import partial

import numpy as np
import torch


def tiny_hq_sam() -> torch.nn.Module:
    """A random HQ-SAM built from the package's own classes with a tiny ViT (2 blocks, width 64)."""
    from segment_anything_hq import modeling as m

    torch.manual_seed(3)
    encoder = m.ImageEncoderViT(depth=2, embed_dim=64, img_size=1024, mlp_ratio=4,
                                norm_layer=partial(torch.nn.LayerNorm, eps=1e-6), num_heads=2, patch_size=16,
                                qkv_bias=True, use_rel_pos=True, global_attn_indexes=[1], window_size=14,
                                out_chans=256)
    decoder = m.MaskDecoderHQ(num_multimask_outputs=3,
                              transformer=m.TwoWayTransformer(depth=2, embedding_dim=256, mlp_dim=2048, num_heads=8),
                              transformer_dim=256, iou_head_depth=3, iou_head_hidden_dim=256, vit_dim=64)
    prompt = m.PromptEncoder(embed_dim=256, image_embedding_size=(64, 64), input_image_size=(1024, 1024),
                             mask_in_chans=16)
    return m.Sam(image_encoder=encoder, prompt_encoder=prompt, mask_decoder=decoder).eval()


def tiny_hf(class_name: str):
    """A small random model of `class_name` from transformers' own configs, with its processor."""
    import transformers as T

    torch.manual_seed(5)
    if class_name == "SamModel":
        vision = T.SamVisionConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
                                   global_attn_indexes=[1], mlp_dim=256)
        return T.SamModel(T.SamConfig(vision_config=vision)), T.SamProcessor(T.SamImageProcessor())
    if class_name == "SamHQModel":
        vision = T.SamHQVisionConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
                                     global_attn_indexes=[1], mlp_dim=256)
        config = T.SamHQConfig(vision_config=vision, mask_decoder_config=T.SamHQMaskDecoderConfig(vit_dim=64))
        return T.SamHQModel(config), T.SamHQProcessor(T.SamImageProcessor())
    if class_name == "Sam2Model":
        hiera = T.Sam2HieraDetConfig(hidden_size=32, blocks_per_stage=[1, 1, 2, 1],
                                     embed_dim_per_stage=[32, 64, 128, 256],
                                     num_attention_heads_per_stage=[1, 1, 2, 4], global_attention_blocks=[3])
        vision = T.Sam2VisionConfig(backbone_config=hiera, backbone_channel_list=[256, 128, 64, 32])
        return T.Sam2Model(T.Sam2Config(vision_config=vision)), T.Sam2Processor(T.Sam2ImageProcessor())
    vit = T.Sam3ViTConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2,
                          global_attn_indexes=[1])
    config = T.Sam3TrackerConfig(vision_config=T.Sam3VisionConfig(backbone_config=vit))
    return T.Sam3TrackerModel(config), T.Sam3TrackerProcessor(T.Sam3ImageProcessor())


class Reference:
    """The documented transformers path for one prompt: processor -> model(image_embeddings=...)."""

    def __init__(self, model, processor, class_name: str, image: np.ndarray) -> None:
        self.model, self.processor, self.class_name, self.image = model.eval(), processor, class_name, image
        self.inputs = processor(images=image, return_tensors="pt")
        with torch.no_grad():
            embeddings = model.get_image_embeddings(self.inputs["pixel_values"])
        self.image_kwargs = ({"image_embeddings": embeddings[0], "intermediate_embeddings": embeddings[1]}
                             if class_name == "SamHQModel" else {"image_embeddings": embeddings})

    def __call__(self, prompts, i: int, multimask: bool):
        out = self.run(
            input_points=None if prompts.points is None else [[prompts.points[i].tolist()]],
            input_labels=None if prompts.labels is None else [[prompts.labels[i].tolist()]],
            input_boxes=None if prompts.boxes is None else [[prompts.boxes[i].tolist()]],
            input_masks=None if prompts.mask_logits is None else prompts.mask_logits[i][None],
            multimask=multimask)
        return out.pred_masks[0, 0].numpy(), out.iou_scores[0, 0].numpy()

    def run(self, input_masks=None, multimask=True, **prompt_lists):
        encoded = self.processor(images=self.image, return_tensors="pt", **prompt_lists)
        prompt_inputs = {k: encoded[k] for k in ("input_points", "input_labels", "input_boxes") if k in encoded}
        with torch.no_grad():
            return self.model(**self.image_kwargs, **prompt_inputs, input_masks=input_masks,
                              multimask_output=multimask)

    def full_masks(self, out, binarize: bool):
        sizes = [self.inputs["original_sizes"]]
        if "reshaped_input_sizes" in self.inputs:
            sizes.append(self.inputs["reshaped_input_sizes"])
        return self.processor.post_process_masks(out.pred_masks, *sizes, binarize=binarize)[0][0]


def clip_tokenizer():
    """CLIP's own BPE tokenizer (SAM 3's and OWLv2's) as a transformers CLIPTokenizer, built offline from
    the vocabulary file open_clip ships: byte units, the same with the end-of-word mark, the merges,
    then the two special tokens (CLIP's construction)."""
    import gzip
    from pathlib import Path

    import open_clip
    import transformers as T
    from open_clip.tokenizer import bytes_to_unicode

    lines = gzip.open(Path(open_clip.__file__).parent / "bpe_simple_vocab_16e6.txt.gz").read().decode().split("\n")
    merges = [tuple(m.split()) for m in lines[1:49152 - 256 - 2 + 1]]
    units = list(bytes_to_unicode().values())
    vocab = units + [u + "</w>" for u in units] + ["".join(m) for m in merges] + ["<|startoftext|>", "<|endoftext|>"]
    return T.CLIPTokenizer(vocab={v: i for i, v in enumerate(vocab)}, merges=merges)


def tiny_sam3_concepts(image_size: int = 336):
    """A small random transformers Sam3Model (ViT 32 wide, one layer per transformer stack, 20 queries) at a
    smaller input size, with its processor; the feature sizes follow the input (patch 14, scales 4/2/1)."""
    import transformers as T

    torch.manual_seed(7)
    grid = image_size // 14
    vit = T.Sam3ViTConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                          global_attn_indexes=[1], image_size=image_size, window_size=grid // 2)
    vision = T.Sam3VisionConfig(backbone_config=vit, backbone_feature_sizes=[[4 * grid] * 2, [2 * grid] * 2, [grid] * 2])
    text = dict(hidden_size=32, intermediate_size=64, projection_dim=32, num_hidden_layers=1, num_attention_heads=2)
    config = T.Sam3Config(vision_config=vision, text_config=text, detr_encoder_config=dict(num_layers=1),
                          detr_decoder_config=dict(num_layers=1, num_queries=20),
                          geometry_encoder_config=dict(num_layers=1))
    model = T.Sam3Model(config).eval()
    processor = T.Sam3Processor(T.Sam3ImageProcessor(size={"height": image_size, "width": image_size}), clip_tokenizer())
    return model, processor


def tiny_hf_video(class_name: str):
    """A small random transformers video tracker (`Sam2VideoModel` or `Sam3TrackerVideoModel`) at a
    256 / 224 input (16x16 memory tokens: fast on CPU), with its processor. Random heads say "no
    object" after the prompt frame and give logits near 0: the object-score head is biased to
    "present" and the mask heads scaled to a trained range, so equal outputs say something."""
    import transformers as T

    torch.manual_seed(7)
    sizes = {"backbone_feature_sizes": [[64, 64], [32, 32], [16, 16]]}
    memory = {"memory_attention_rope_feat_sizes": [16, 16], "memory_attention_num_layers": 2,
              "memory_attention_feed_forward_hidden_size": 256}
    if class_name == "Sam2VideoModel":
        side = 256
        hiera = T.Sam2HieraDetConfig(hidden_size=32, blocks_per_stage=[1, 1, 2, 1], embed_dim_per_stage=[32, 64, 128, 256],
                                     num_attention_heads_per_stage=[1, 1, 2, 4], global_attention_blocks=[3],
                                     image_size=[side, side])
        vision = T.Sam2VisionConfig(backbone_config=hiera, backbone_channel_list=[256, 128, 64, 32], **sizes)
        model = T.Sam2VideoModel(T.Sam2VideoConfig(vision_config=vision, image_size=side,
                                                   prompt_encoder_config={"image_size": side}, **memory))
        image_processor = T.Sam2ImageProcessor(size={"height": side, "width": side})
        processor_class = T.Sam2VideoProcessor
    else:
        side = 224
        vit = T.Sam3ViTConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2,
                              global_attn_indexes=[1], image_size=side, pretrain_image_size=side)
        vision = T.Sam3VisionConfig(backbone_config=vit, **sizes)
        model = T.Sam3TrackerVideoModel(T.Sam3TrackerVideoConfig(vision_config=vision, image_size=side,
                                                                 prompt_encoder_config={"image_size": side}, **memory))
        image_processor = T.Sam3ImageProcessor(size={"height": side, "width": side})
        processor_class = T.Sam3TrackerVideoProcessor
    with torch.no_grad():
        for mlp in model.mask_decoder.output_hypernetworks_mlps:
            mlp.proj_out.weight.mul_(1000.0)
        model.mask_decoder.pred_obj_score_head.proj_out.bias.add_(20.0)
    processor = processor_class(image_processor, T.Sam2VideoVideoProcessor(size={"height": side, "width": side}),
                                target_size=side)
    return model.eval(), processor
