"""LIAE: shared encoder, two inters (AB for both identities, B for dst only), one shared decoder.

dst code = [inter_AB(x), inter_B(x)]; src code and the swap code = [inter_AB(x), inter_AB(x)]. The one
decoder must render both identities, so the identity lives in the code: feeding dst's inter_AB half twice
gives dst's expression in src's "code space", which the decoder renders as src. Better at matching dst's
lighting than DF, weaker src likeness.
"""

from __future__ import annotations

import torch

from facecast.train.archs.base import SwapModel, TrainOutputs
from facecast.train.archs.blocks import Decoder, Encoder, Inter
from facecast.train.archs.registry import ArchSpec


class LIAE(SwapModel):
    def __init__(self, spec: ArchSpec, resolution: int, ae_dims: int, e_dims: int, d_dims: int, d_mask_dims: int) -> None:
        super().__init__(spec, resolution)
        self.encoder = Encoder(3, e_dims, spec.t, spec.u)
        enc_res = resolution // (32 if spec.t else 16)
        enc_features = e_dims * 8 * enc_res * enc_res
        self.inter_AB = Inter(enc_features, ae_dims, ae_dims * 2, self.lowest_res, spec.t)
        self.inter_B = Inter(enc_features, ae_dims, ae_dims * 2, self.lowest_res, spec.t)
        self.decoder = Decoder(ae_dims * 2 * 2, d_dims, d_mask_dims, spec.t, spec.d)

    def _codes(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(dst-style code, src-style code) of x."""
        h = self.encoder(x)
        ab = self.inter_AB(h)
        return torch.cat([ab, self.inter_B(h)], 1), torch.cat([ab, ab], 1)

    def forward_train(self, src: torch.Tensor, dst: torch.Tensor) -> TrainOutputs:
        # src and dst share the encoder, inter_AB and the decoder, so each runs once on both stacked:
        # the same arithmetic (nothing mixes samples) in fewer, larger GEMMs.
        n = len(src)
        h = self.encoder(torch.cat([src, dst]))
        ab = self.inter_AB(h)
        ab_src, ab_dst = ab[:n], ab[n:]
        src_code = torch.cat([ab_src, ab_src], 1)
        dst_code = torch.cat([ab_dst, self.inter_B(h[n:])], 1)
        codes = [src_code, dst_code] + ([torch.cat([ab_dst, ab_dst], 1)] if self.train_swap else [])
        img, msk = self.decoder(torch.cat(codes))
        sizes = [len(c) for c in codes]
        imgs, msks = img.split(sizes), msk.split(sizes)
        ps, psm, pd, pdm = imgs[0], msks[0], imgs[1], msks[1]
        sw, swm = (imgs[2], msks[2]) if self.train_swap else (None, None)
        return TrainOutputs(ps, psm, pd, pdm, sw, swm, src_code, dst_code)

    def swap(self, dst: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        dst_code, swap_code = self._codes(dst)
        face, face_mask = self.decoder(swap_code)
        _, dst_mask = self.decoder(dst_code)
        return face, face_mask, dst_mask

    def code_channels(self) -> int:
        return self.inter_AB.out_ch * 2
