"""DF: one shared encoder and inter, separate src and dst decoders.

The swap is dst's code decoded by the src decoder: the shared code has to carry expression and pose
(both decoders must reconstruct from it), while each decoder learns one identity's appearance.
"""

from __future__ import annotations

import torch


from facecast.train.archs.base import SwapModel, TrainOutputs
from facecast.train.archs.blocks import Decoder, Encoder, Inter
from facecast.train.archs.registry import ArchSpec


class DF(SwapModel):
    def __init__(self, spec: ArchSpec, resolution: int, ae_dims: int, e_dims: int, d_dims: int, d_mask_dims: int) -> None:
        super().__init__(spec, resolution)
        self.encoder = Encoder(3, e_dims, spec.t, spec.u)
        enc_res = resolution // (32 if spec.t else 16)
        enc_features = e_dims * 8 * enc_res * enc_res
        self.inter = Inter(enc_features, ae_dims, ae_dims, self.lowest_res, spec.t)
        self.decoder_src = Decoder(ae_dims, d_dims, d_mask_dims, spec.t, spec.d)
        self.decoder_dst = Decoder(ae_dims, d_dims, d_mask_dims, spec.t, spec.d)

    def code(self, x: torch.Tensor) -> torch.Tensor:
        return self.inter(self.encoder(x))

    def forward_train(self, src: torch.Tensor, dst: torch.Tensor) -> TrainOutputs:
        # One encoder/inter call on src and dst stacked: the same arithmetic (nothing mixes samples),
        # in half as many, twice as large GEMMs, which a CPU runs nearer its peak.
        src_code, dst_code = self.code(torch.cat([src, dst])).split([len(src), len(dst)])
        ps, psm = self.decoder_src(src_code)
        pd, pdm = self.decoder_dst(dst_code)
        sw, swm = self.decoder_src(dst_code) if self.train_swap else (None, None)
        return TrainOutputs(ps, psm, pd, pdm, sw, swm, src_code, dst_code)

    def swap(self, dst: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        code = self.code(dst)
        face, face_mask = self.decoder_src(code)
        _, dst_mask = self.decoder_dst(code)
        return face, face_mask, dst_mask

    def code_channels(self) -> int:
        return self.inter.out_ch


