"""A faster call order for segment_anything's MaskDecoder: same modules, same weights, same outputs.

The official `MaskDecoder.predict_masks` copies the image embedding and its positional encoding
once per prompt (`repeat_interleave`) and recomputes every image-side projection per prompt. This
module runs the same TwoWayTransformer blocks, attention projections, MLPs, layer norms,
hypernetworks and output upscaling, in an order that does prompt-independent work once:

- the image-side projections of every attention are linear, so `proj(keys + pe)` is computed as
  `proj(keys) + proj_weight @ pe`; the positional-encoding term is computed once per model, and
  the three projections a block reads from the image tokens (token-to-image keys and values,
  image-to-token queries) run as one matrix product of the concatenated official weights;
- without a mask input every prompt sees the same image tokens in the first block, so that
  block's image-side projections run once for the whole prompt batch, and its token-to-image
  attention reads them for all prompts' tokens in one call (attention rows are independent);
- no per-prompt copy of the image embedding or its encoding is made: the first block's residual
  broadcasts the shared image tokens;
- with few prompt tokens (heads x tokens < attention width: up to 15 tokens for SAM, i.e. up to
  9 clicks) the attentions between the 4096 image tokens and the prompt tokens go through the
  projection weights instead of through projected image tokens: the same matrix products,
  multiplied in the cheaper order (about 2.3x fewer operations in those attentions);
- only the hypernetworks of the masks that are returned run (1 of 4, or 3 of 4 with multimask).

Results equal the official forward within float rounding (tests/test_fast_decoder.py: <= 1e-4 on
the logits for points, boxes, both, mask inputs, multimask on and off). Only an instance of
exactly segment_anything's MaskDecoder with its TwoWayTransformer is accepted (`supports`):
subclasses such as HQ-SAM's decoder change the forward and keep the official call.
The decoder's weights are read when this object is built and on first use per dtype: build it
after loading the checkpoint.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from segment_anything.modeling import MaskDecoder, TwoWayTransformer
from segment_anything.modeling.transformer import Attention, TwoWayAttentionBlock
from torch import Tensor


def supports(decoder: torch.nn.Module) -> bool:
    """True when `decoder` runs exactly segment_anything's MaskDecoder + TwoWayTransformer forward."""
    transformer = getattr(decoder, "transformer", None)
    return (type(decoder) is MaskDecoder and type(transformer) is TwoWayTransformer
            and all(type(layer) is TwoWayAttentionBlock for layer in transformer.layers)
            and all(type(a) is Attention for a in _attentions(transformer)))


def _attentions(transformer: TwoWayTransformer) -> list[Attention]:
    blocks = [(b.self_attn, b.cross_attn_token_to_image, b.cross_attn_image_to_token) for b in transformer.layers]
    return [a for trio in blocks for a in trio] + [transformer.final_attn_token_to_image]


@dataclass
class ImageSide:
    """The image tokens a prompt batch starts from, and what of them is shared by all its prompts."""

    keys: Tensor  # (1 or B, HW, C): image embedding + dense prompt embedding, tokens last
    projected: Tensor | None  # (1, HW, 3 * Ci): first block's projections when keys is shared


class FastMaskDecoder:
    """Callable with the official decoder's arguments, for prompt batches against one image."""

    def __init__(self, decoder: MaskDecoder, image_pe: Tensor) -> None:
        if not supports(decoder):
            raise TypeError(f"{type(decoder).__name__} is not segment_anything's MaskDecoder")
        self.decoder = decoder
        self.transformer: TwoWayTransformer = decoder.transformer
        self.image_pe = image_pe.detach()
        self._pe_biases: dict[tuple, list[Tensor]] = {}

    # -- prompt-independent work -------------------------------------------------------------
    def _pe_bias(self, index: int, dtype: torch.dtype, device: torch.device) -> Tensor:
        """(HW, n * Ci): bias + projection of the positional encoding for the image-side
        projections of block `index` (len(layers): the final attention; values get no encoding).
        Computed once per dtype and device."""
        key = (dtype, device)
        if key not in self._pe_biases:
            with torch.autocast(device.type, enabled=False):
                pe = self.image_pe.to(device, torch.float32).flatten(2)[0].T  # (HW, C)
                biases = []
                for i in range(len(self.transformer.layers) + 1):
                    weight, bias, with_pe = self._weights(i)
                    pe_part = pe @ weight.float().T * with_pe  # zero on the value rows
                    biases.append((pe_part + bias.float()).to(dtype).contiguous())
            self._pe_biases[key] = biases
        return self._pe_biases[key][index]

    def _weights(self, index: int) -> tuple[Tensor, Tensor, Tensor]:
        """The image-side projections of block `index` (len(layers): the final attention) as one
        (n * Ci, C) weight, its bias, and a 0/1 row mask of the rows that see keys + pe."""
        layers = self.transformer.layers
        if index < len(layers):
            t2i, i2t = layers[index].cross_attn_token_to_image, layers[index].cross_attn_image_to_token
            parts = [(t2i.k_proj, 1.0), (t2i.v_proj, 0.0), (i2t.q_proj, 1.0)]
        else:
            final = self.transformer.final_attn_token_to_image
            parts = [(final.k_proj, 1.0), (final.v_proj, 0.0)]
        weight = torch.cat([m.weight for m, _ in parts])
        bias = torch.cat([m.bias for m, _ in parts])
        with_pe = torch.cat([torch.full((m.out_features,), f, device=weight.device) for m, f in parts])
        return weight, bias, with_pe

    def image_side(self, image_embedding: Tensor, dense: Tensor, shared: bool) -> ImageSide:
        """image_embedding (1, C, h, w); dense (1, C, h, w) and `shared` when it is the same for
        every prompt (no mask input): the first block's projections are then made once here, for
        all the image's prompts. Otherwise dense is (B, C, h, w), one per prompt, and nothing is
        projected ahead: with few tokens the forward goes through the weights instead, which a
        single mask prompt (every click of a one-object image) would otherwise pay for twice."""
        keys = (image_embedding + dense).flatten(2).transpose(1, 2)
        return ImageSide(keys, self._project(0, keys) if shared else None)

    def _project(self, index: int, keys: Tensor) -> Tensor:
        """Image-side projections of block `index` (len(layers): the final attention) of keys + pe,
        as one matrix product plus the cached positional-encoding term and biases."""
        weight, _, _ = self._weights(index)
        out = keys @ weight.T
        out += self._pe_bias(index, out.dtype, out.device)
        return out

    # -- per-prompt work ---------------------------------------------------------------------
    def __call__(self, side: ImageSide, sparse: Tensor, multimask: bool) -> tuple[Tensor, Tensor]:
        """sparse (B, N, C) prompt tokens -> (B, M, 4h, 4w) mask logits, (B, M) predicted IoUs,
        as MaskDecoder.forward with the same prompts."""
        return self.forward(side.keys, side.projected, sparse, multimask)

    def forward(self, keys: Tensor, projected: Tensor | None, sparse: Tensor,
                multimask: bool) -> tuple[Tensor, Tensor]:
        """__call__ on plain tensors (what torch.compile traces)."""
        d, t = self.decoder, self.transformer
        b = sparse.shape[0]
        output_tokens = torch.cat([d.iou_token.weight, d.mask_tokens.weight]).unsqueeze(0).expand(b, -1, -1)
        tokens = torch.cat([output_tokens, sparse], dim=1)
        # Few tokens: attend through the weights instead of projecting 4096 image tokens (below).
        few = _few_tokens(t.final_attn_token_to_image, tokens.shape[1])
        pe = self.image_pe.flatten(2)[0].T.to(keys.device)  # (HW, C)
        queries = tokens
        for index, block in enumerate(t.layers):
            if index > 0 or projected is None:
                projected = None if few else self._project(index, keys)
            queries, keys = self._block(block, queries, keys, tokens, projected, pe)
        final = t.final_attn_token_to_image
        q = final.q_proj(queries + tokens)
        if few:
            attn_out = _attend_image_few(final, q, keys + pe, keys)
        else:
            k, v = self._project(len(t.layers), keys).chunk(2, dim=-1)
            attn_out = final.out_proj(_attend(q, k, v, final.num_heads))
        queries = t.norm_final_attn(queries + attn_out)

        h, w = self.image_pe.shape[-2:]
        src = keys.transpose(1, 2).view(b, -1, h, w)  # channels-last: no copy
        upscaled = _upscale(d.output_upscaling, src)
        wanted = range(1, d.num_mask_tokens) if multimask else range(1)
        hyper_in = torch.stack([d.output_hypernetworks_mlps[i](queries[:, 1 + i]) for i in wanted], dim=1)
        bu, _, hu, wu = upscaled.shape
        masks = (hyper_in @ upscaled.flatten(2)).view(bu, -1, hu, wu)
        iou_pred = d.iou_prediction_head(queries[:, 0])
        return masks, iou_pred[:, 1:] if multimask else iou_pred[:, :1]

    def _block(self, block: TwoWayAttentionBlock, queries: Tensor, keys: Tensor, query_pe: Tensor,
               projected: Tensor | None, pe: Tensor) -> tuple[Tensor, Tensor]:
        """TwoWayAttentionBlock.forward. `projected`: the image-side projections of keys + pe
        (t2i keys, values; i2t queries); None: attend through the weights (few tokens)."""
        if block.skip_first_layer_pe:
            queries = block.self_attn(q=queries, k=queries, v=queries)
        else:
            q = queries + query_pe
            queries = queries + block.self_attn(q=q, k=q, v=queries)
        queries = block.norm1(queries)

        t2i, i2t = block.cross_attn_token_to_image, block.cross_attn_image_to_token
        q_tok = t2i.q_proj(queries + query_pe)
        if projected is None:
            keys_pe = keys + pe
            attn_out = _attend_image_few(t2i, q_tok, keys_pe, keys)
        else:
            k_img, v_img, q_img = projected.chunk(3, dim=-1)
            attn_out = t2i.out_proj(_attend(q_tok, k_img, v_img, t2i.num_heads))
        queries = block.norm2(queries + attn_out)
        queries = block.norm3(queries + block.mlp(queries))

        q_tok = queries + query_pe
        k_tok, v_tok = i2t.k_proj(q_tok), i2t.v_proj(queries)
        if projected is None:
            attn_out = _attend_tokens_few(i2t, keys_pe, k_tok, v_tok)
        elif _few_tokens(i2t, k_tok.shape[1]):
            attn_out = _attend_tokens_few(i2t, None, k_tok, v_tok, q_img)
        else:
            attn_out = i2t.out_proj(_attend(q_img, k_tok, v_tok, i2t.num_heads))
        keys = block.norm4(keys + attn_out)  # shared keys (1, HW, C) broadcast to the batch here
        return queries, keys


def _few_tokens(attention: Attention, n_tokens: int) -> bool:
    """Whether heads x tokens < internal width: then attention between 4096 image tokens and the
    prompt tokens costs fewer operations through the projection weights than through projected
    image tokens (the matrix products are associative; nothing else changes)."""
    return attention.num_heads * n_tokens < attention.internal_dim


def _attend_image_few(attn: Attention, q: Tensor, keys_pe: Tensor, keys: Tensor) -> Tensor:
    """Token-to-image attention(q=tokens, k=keys + pe, v=keys) with its out_proj, for projected
    queries q (B, T, Ci) and image tokens (B, HW, C), without projecting the image tokens:
    scores_h = (q_h W_k,h) (keys + pe)^T (q_h . b_k,h is the same for every image token: softmax
    ignores it), and softmax_h (keys W_v,h^T + b_v,h) = (softmax_h keys) W_v,h^T + b_v,h."""
    b, n, _ = q.shape
    heads, c = attn.num_heads, keys.shape[-1]
    dh = attn.internal_dim // heads
    qh = q.view(b, n, heads, dh).transpose(1, 2)  # (B, h, T, d)
    through_k = (qh @ attn.k_proj.weight.view(heads, dh, c)).reshape(b, heads * n, c)
    scores = torch.softmax(through_k @ keys_pe.transpose(1, 2) / math.sqrt(dh), dim=-1)  # (B, hT, HW)
    mixed = (scores @ keys).view(b, heads, n, c)
    out = mixed @ attn.v_proj.weight.view(heads, dh, c).transpose(1, 2) + attn.v_proj.bias.view(heads, 1, dh)
    return attn.out_proj(out.transpose(1, 2).reshape(b, n, heads * dh))


def _attend_tokens_few(attn: Attention, keys_pe: Tensor | None, k: Tensor, v: Tensor,
                       q_img: Tensor | None = None) -> Tensor:
    """Image-to-token attention(q=keys + pe, k=tokens, v=tokens) with its out_proj, for projected
    token keys/values k, v (B, T, Ci): scores from the projected image queries q_img (1 or B, HW, Ci)
    when given, else through the weights, (keys + pe) (W_q,h^T k_h^T) + b_q,h k_h^T; the output
    as softmax_h (v_h W_o,h^T), summed over heads, + b_o, instead of out_proj of the heads."""
    b, n, _ = k.shape
    heads = attn.num_heads
    dh = attn.internal_dim // heads
    kh, vh = k.view(b, n, heads, dh), v.view(b, n, heads, dh)
    if q_img is not None:
        scores = torch.einsum("bxhd,bthd->bxht", q_img.view(q_img.shape[0], q_img.shape[1], heads, dh)
                              .expand(b, -1, -1, -1), kh)
    else:
        wq = attn.q_proj.weight.view(heads, dh, -1)  # (h, d, C)
        through_q = torch.einsum("hdc,bthd->bcht", wq, kh).reshape(b, wq.shape[-1], heads * n)
        bias = torch.einsum("hd,bthd->bht", attn.q_proj.bias.view(heads, dh), kh).reshape(b, 1, heads * n)
        scores = (keys_pe @ through_q + bias).view(b, -1, heads, n)
    scores = torch.softmax(scores / math.sqrt(dh), dim=-1).reshape(b, -1, heads * n)  # (B, HW, hT)
    wo = attn.out_proj.weight.view(-1, heads, dh)  # (C, h, d)
    through_o = torch.einsum("bthd,chd->bhtc", vh, wo).reshape(b, heads * n, -1)
    return scores @ through_o + attn.out_proj.bias


def _attend(q: Tensor, k: Tensor, v: Tensor, heads: int) -> Tensor:
    """Attention.forward after its input projections: (Bq, Nq, Ci) x (Bk, Nk, Ci) -> (B, Nq, Ci).
    Bk == 1 < Bq: keys shared by the batch, attended in one call with the batch folded into the
    query length (attention rows are independent). Bq == 1 < Bk: queries shared, broadcast."""
    b = max(q.shape[0], k.shape[0])
    n_q = q.shape[1]
    if k.shape[0] == 1 and b > 1:
        q = q.reshape(1, b * n_q, q.shape[-1])
    q, k, v = _heads(q, heads), _heads(k, heads), _heads(v, heads)
    attn = q @ k.transpose(-1, -2)
    attn = torch.softmax(attn / math.sqrt(q.shape[-1]), dim=-1)
    out = attn @ v
    return out.transpose(1, 2).reshape(b, n_q, -1)


def _heads(x: Tensor, heads: int) -> Tensor:
    b, n, c = x.shape
    return x.view(b, n, heads, c // heads).transpose(1, 2)


def _upscale(upscaling: torch.nn.Sequential, src: Tensor) -> Tensor:
    """MaskDecoder.output_upscaling (ConvT, LayerNorm2d, act, ConvT, act) on channels-last input,
    with LayerNorm2d's per-pixel channel normalisation as one F.layer_norm on the channels-last
    view (the same biased-variance formula, without its five elementwise passes)."""
    up1, norm, act1, up2, act2 = upscaling
    x = up1(src).contiguous(memory_format=torch.channels_last)
    x = F.layer_norm(x.permute(0, 2, 3, 1), norm.weight.shape, norm.weight, norm.bias, norm.eps).permute(0, 3, 1, 2)
    return act2(up2(act1(x)))
