"""Feature extractors for the two symbolic env families: the MiniGrid 7x7x3 view and the NetHack glyph map.

Both read *indices* (object/colour/state ids, glyph ids, message bytes), not pixel intensities, so they embed or
one-hot them instead of scaling by 1/255; build the policy with ``normalize_images=False`` for MiniGrid.
"""

from __future__ import annotations

import gymnasium as gym
import torch as th
import torch.nn.functional as F
from minigrid.core.constants import COLOR_TO_IDX, OBJECT_TO_IDX, STATE_TO_IDX
from nle import nethack
from stable_baselines3.common.preprocessing import is_image_space_channels_first
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import nn

#: Number of distinct values in each channel of MiniGrid's symbolic image (object type, colour, door state).
MINIGRID_CHANNEL_SIZES = (len(OBJECT_TO_IDX), len(COLOR_TO_IDX), len(STATE_TO_IDX))
NETHACK_KEYS = ("glyphs", "blstats", "message")


class MiniGridCNN(BaseFeaturesExtractor):
    """One-hot per channel, then the rl-starter-files CNN (2x2 convs 16-32-64 with one max-pool), then a linear layer.

    One-hot encoding treats "object 5" and "object 6" as unrelated categories rather than nearby intensities.
    Accepts channels-last (7, 7, 3) and channels-first (3, 7, 7): SB3 transposes image-like spaces itself.
    """

    def __init__(self, observation_space: gym.spaces.Box, features_dim: int = 128):
        shape = tuple(observation_space.shape)
        if len(shape) != 3 or 3 not in (shape[0], shape[-1]):
            raise ValueError(f"MiniGridCNN needs a (H, W, 3) or (3, H, W) symbolic image, got shape {shape}")
        super().__init__(observation_space, features_dim)
        self.channels_first = is_image_space_channels_first(observation_space)
        in_channels = sum(MINIGRID_CHANNEL_SIZES)
        self.cnn = nn.Sequential(
            nn.Conv2d(in_channels, 16, 2), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 2), nn.ReLU(),
            nn.Conv2d(32, 64, 2), nn.ReLU(),
            nn.Flatten(),
        )
        with th.no_grad():
            sample = th.as_tensor(observation_space.sample()[None]).float()
            try:
                n_flat = self.cnn(self._one_hot(sample)).shape[1]
            except RuntimeError as exc:
                raise ValueError(f"MiniGridCNN needs a view of at least 6x6 cells, got shape {shape}") from exc
        self.linear = nn.Sequential(nn.Linear(n_flat, features_dim), nn.ReLU())

    def _one_hot(self, obs: th.Tensor) -> th.Tensor:
        """(B, H, W, 3) or (B, 3, H, W) float indices -> (B, 20, H, W) one-hot planes."""
        if self.channels_first:
            obs = obs.permute(0, 2, 3, 1)
        obs = obs.long()
        planes = [F.one_hot(obs[..., c].clamp(0, n - 1), n) for c, n in enumerate(MINIGRID_CHANNEL_SIZES)]
        return th.cat(planes, dim=-1).permute(0, 3, 1, 2).float()

    def forward(self, observations: th.Tensor) -> th.Tensor:
        return self.linear(self.cnn(self._one_hot(observations)))


def crop_around(grid: th.Tensor, x: th.Tensor, y: th.Tensor, size: int, pad_value: int) -> th.Tensor:
    """The ``size`` x ``size`` window of ``grid`` (B, H, W) centred on column ``x``, row ``y``, per batch row.

    Cells outside the map read ``pad_value``. One pad and one gather: no Python loop over the batch.
    """
    if size % 2 != 1:
        raise ValueError(f"crop size must be odd so the agent is at the centre, got {size}")
    radius = size // 2
    batch, height, width = grid.shape
    padded = F.pad(grid, (radius, radius, radius, radius), value=pad_value)
    offsets = th.arange(size, device=grid.device)
    # Row y - radius + k of the map is row y + k of the padded map.
    rows = y.long().clamp(0, height - 1)[:, None] + offsets
    cols = x.long().clamp(0, width - 1)[:, None] + offsets
    index = rows[:, :, None] * (width + 2 * radius) + cols[:, None, :]
    return padded.reshape(batch, -1).gather(1, index.reshape(batch, -1)).reshape(batch, size, size)


def symlog(x: th.Tensor) -> th.Tensor:
    """sign(x) * log(1 + |x|): squashes gold, score and the turn counter without a per-stat scale table."""
    return th.sign(x) * th.log1p(th.abs(x))


class NetHackExtractor(BaseFeaturesExtractor):
    """Motif/NLE-baseline style encoder sized for a CPU: egocentric crop + coarse map + blstats + message.

    - glyphs: one embedding; a 9x9 crop centred on the agent (blstats x, y) through two 3x3 convs, and the full
      21x79 map through a 2x2-patch conv and a strided 3x3 conv (coarse layout: where the rooms and stairs are);
    - blstats: symlog, then a 2-layer MLP;
    - message: byte embedding, a 4-byte-patch conv, a strided conv and a max over positions;
    - concatenated -> ``features_dim``.

    The full map reads the embedding *detached*: it is trained through the crop only. Back-propagating into 1,659
    lookups per sample (the embedding's scatter-add) cost more than all the rest of the network on a CPU.
    About 0.6M parameters; a PPO update on 256 samples takes ~75 ms on one core.
    """

    def __init__(self, observation_space: gym.spaces.Dict, features_dim: int = 256, glyph_dim: int = 16,
                 crop_size: int = 9):
        missing = [key for key in NETHACK_KEYS if key not in observation_space.spaces]
        if missing:
            raise ValueError(f"NetHackExtractor needs observation keys {list(NETHACK_KEYS)}; missing {missing}")
        if crop_size % 2 != 1:
            raise ValueError(f"crop_size must be odd so the agent is at the centre, got {crop_size}")
        if observation_space["message"].shape[0] < 16:
            raise ValueError(f"message must hold >= 16 bytes, got shape {observation_space['message'].shape}")
        super().__init__(observation_space, features_dim)
        self.crop_size = crop_size
        self.pad_glyph = nethack.MAX_GLYPH  # one past the last real glyph: "outside the map"
        rows, cols = observation_space["glyphs"].shape
        n_blstats = observation_space["blstats"].shape[0]

        self.glyph_embed = nn.Embedding(nethack.MAX_GLYPH + 1, glyph_dim, padding_idx=self.pad_glyph)
        self.crop_net = nn.Sequential(
            nn.Conv2d(glyph_dim, 16, 3, padding=1), nn.ELU(),
            nn.Conv2d(16, 16, 3, padding=1), nn.ELU(),
            nn.Flatten(), nn.Linear(16 * crop_size * crop_size, 128), nn.ELU(),
        )
        map_conv = nn.Sequential(  # 2x2 patches (padded, so the last row and column are kept), strided 3x3
            nn.Conv2d(glyph_dim, 8, 2, stride=2, padding=1), nn.ELU(),
            nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.ELU(), nn.Flatten(),
        )
        with th.no_grad():
            n_map = map_conv(th.zeros(1, glyph_dim, rows, cols)).shape[1]
        self.map_net = nn.Sequential(map_conv, nn.Linear(n_map, 128), nn.ELU())
        self.blstats_net = nn.Sequential(nn.Linear(n_blstats, 64), nn.ELU(), nn.Linear(64, 64), nn.ELU())
        self.msg_embed = nn.Embedding(256, 8, padding_idx=0)
        self.msg_net = nn.Sequential(
            nn.Conv1d(8, 32, 4, stride=4), nn.ELU(),
            nn.Conv1d(32, 64, 3, stride=2), nn.ELU(),
            nn.AdaptiveMaxPool1d(1), nn.Flatten(), nn.Linear(64, 64), nn.ELU(),
        )
        self.head = nn.Sequential(nn.Linear(128 + 128 + 64 + 64, features_dim), nn.ELU())

    def forward(self, observations: dict[str, th.Tensor]) -> th.Tensor:
        glyphs = observations["glyphs"].long().clamp(0, self.pad_glyph)
        blstats = observations["blstats"]
        x, y = blstats[:, nethack.NLE_BL_X], blstats[:, nethack.NLE_BL_Y]
        crop = crop_around(glyphs, x, y, self.crop_size, self.pad_glyph)
        crop_feat = self.crop_net(self.glyph_embed(crop).permute(0, 3, 1, 2))
        map_feat = self.map_net(self.glyph_embed(glyphs).detach().permute(0, 3, 1, 2))
        stats_feat = self.blstats_net(symlog(blstats.float()))
        message = observations["message"].long().clamp(0, 255)
        msg_feat = self.msg_net(self.msg_embed(message).transpose(1, 2))
        return self.head(th.cat([crop_feat, map_feat, stats_feat, msg_feat], dim=1))
