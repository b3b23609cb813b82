"""Networks: observation encoder (pixels or state), tanh-Gaussian actor, LayerNorm critic ensemble."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .config import AgentConfig

LOG_STD_MIN, LOG_STD_MAX = -5.0, 2.0


def random_shift(x: torch.Tensor, pad: int) -> torch.Tensor:
    """Random-shift augmentation (DrQ idea): replicate-pad by ``pad`` and crop back at a random offset.

    ``x`` float (B, C, H, W); each sample gets its own integer shift in [-pad, pad].
    """
    if pad <= 0:
        return x
    b, _, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad), mode="replicate")
    # integer shifts expressed as a sampling grid over the padded image
    eps = 1.0 / (h + 2 * pad)
    base_y = torch.linspace(-1.0 + eps, 1.0 - eps, h + 2 * pad, device=x.device)[:h]
    base_x = torch.linspace(-1.0 + eps, 1.0 - eps, w + 2 * pad, device=x.device)[:w]
    gy, gx = torch.meshgrid(base_y, base_x, indexing="ij")
    grid = torch.stack((gx, gy), dim=-1).unsqueeze(0).expand(b, h, w, 2)
    shift = torch.randint(0, 2 * pad + 1, (b, 1, 1, 2), device=x.device).float() * (2.0 / (h + 2 * pad))
    return F.grid_sample(padded, grid + shift, mode="nearest", padding_mode="zeros", align_corners=False)


class ObsEncoder(nn.Module):
    """Observation -> feature vector.

    pixels, ``pixel_encoder="conv"``: every camera's frame is stacked on the channel axis, passed through
    a 4-layer conv net, projected to ``feature_dim`` with LayerNorm + tanh and concatenated with proprio.
    pixels, ``pixel_encoder="frozen"``: the pre-trained keypoints (`pixel_encoder.KeypointEncoder`,
    never updated by SAC) concatenated with proprio.
    state: proprio (+ privileged state).

    The vector part (proprio, + state in state mode) is standardised with a fixed per-entry mean
    and std (buffers ``vec_mean`` / ``vec_std``, saved with the weights): positions in metres
    around 0.5 differ by millimetres where the task is decided, and an unscaled MLP resolves that
    slowly. `SACAgent.fit_normalizer` sets them once from the first data (demos); until then they
    are 0 / 1 (identity).
    """

    def __init__(self, cfg: AgentConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.pixels = cfg.obs_mode == "pixels"
        # pixel_encoder "frozen": pre-trained keypoints, no gradient from SAC; a batch may carry them cached
        # (``obs["features"]``, `ReplayStore.set_featurizer`), else they are computed from the frames
        self.frozen = self.pixels and cfg.pixel_encoder == "frozen"
        if self.frozen:
            from .pixel_encoder import KeypointEncoder

            self.keypoints = KeypointEncoder(cfg).requires_grad_(False).eval()
            self.out_dim = self.keypoints.out_dim + cfg.proprio_dim
        elif self.pixels:
            c = cfg.encoder_channels
            in_ch = 3 * len(cfg.cameras)
            self.conv = nn.Sequential(
                nn.Conv2d(in_ch, c, 3, stride=2), nn.ReLU(),
                nn.Conv2d(c, c, 3, stride=1), nn.ReLU(),
                nn.Conv2d(c, c, 3, stride=1), nn.ReLU(),
                nn.Conv2d(c, c, 3, stride=1), nn.ReLU(),
            )
            with torch.no_grad():
                n = self.conv(torch.zeros(1, in_ch, cfg.image_size, cfg.image_size)).numel()
            self.proj = nn.Sequential(nn.Linear(n, cfg.feature_dim), nn.LayerNorm(cfg.feature_dim), nn.Tanh())
            self.out_dim = cfg.feature_dim + cfg.proprio_dim
        else:
            self.out_dim = cfg.proprio_dim + cfg.state_dim
        self.vec_dim = cfg.proprio_dim + (0 if self.pixels else cfg.state_dim)
        self.register_buffer("vec_mean", torch.zeros(self.vec_dim))
        self.register_buffer("vec_std", torch.ones(self.vec_dim))
        self.register_buffer("vec_fitted", torch.zeros((), dtype=torch.bool))

    def vector(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        """The standardised vector part of ``obs``."""
        v = obs["proprio"]
        if not self.pixels and self.cfg.state_dim:
            v = torch.cat([v, obs["state"]], dim=-1)
        return (v - self.vec_mean) / self.vec_std

    def forward(self, obs: dict[str, torch.Tensor], augment: bool = False) -> torch.Tensor:
        proprio = self.vector(obs)
        if not self.pixels:
            return proprio
        if self.frozen:
            feat = obs.get("features")
            if feat is None:
                with torch.no_grad():
                    feat = self.keypoints(obs["images"])
            return torch.cat([feat, proprio], dim=-1)
        frames = [obs["images"][c] for c in self.cfg.cameras]  # uint8 (B, H, W, 3)
        x = torch.cat(frames, dim=-1).permute(0, 3, 1, 2).float() / 255.0 - 0.5
        if augment:
            x = random_shift(x, self.cfg.augment_pad)
        h = self.conv(x).flatten(1)
        return torch.cat([self.proj(h), proprio], dim=-1)


def mlp(in_dim: int, hidden: int, layers: int, out_dim: int, layer_norm: bool = True) -> nn.Sequential:
    mods: list[nn.Module] = []
    d = in_dim
    for _ in range(layers):
        mods += [nn.Linear(d, hidden)]
        if layer_norm:
            mods += [nn.LayerNorm(hidden)]
        mods += [nn.ReLU()]
        d = hidden
    mods.append(nn.Linear(d, out_dim))
    return nn.Sequential(*mods)


def hidden_dtype(cfg: AgentConfig) -> torch.dtype | None:
    """The dtype the hidden layers compute in (`AgentConfig.hidden_dtype`); None = the weights' own (float32)."""
    return torch.bfloat16 if cfg.hidden_dtype == "bfloat16" else None


def _low(layer: nn.Module, x: torch.Tensor, dtype: torch.dtype, members: torch.Tensor | None = None) -> torch.Tensor:
    """``layer`` (Linear, EnsembleLinear, LayerNorm, ReLU) on ``x`` in ``dtype``: weights cast on the way in, so
    their gradients arrive in float32 through the cast."""
    if isinstance(layer, EnsembleLinear):
        w, b = layer.params(members)
        return torch.bmm(x, w.to(dtype)) + b.to(dtype)  # baddbmm has no fast bfloat16 path on a CPU (2x slower)
    if isinstance(layer, nn.Linear):
        return F.linear(x, layer.weight.to(dtype), layer.bias.to(dtype))
    if isinstance(layer, nn.LayerNorm):
        return F.layer_norm(x, layer.normalized_shape, layer.weight.to(dtype), layer.bias.to(dtype), layer.eps)
    return layer(x)


def run_mixed(layers: nn.Sequential, x: torch.Tensor, dtype: torch.dtype | None,
              members: torch.Tensor | None = None) -> torch.Tensor:
    """An MLP (Linear/EnsembleLinear, [LayerNorm], ReLU, ..., Linear) on ``x``. With ``dtype`` (bfloat16) the
    layers between the first and the last linear layer compute in it: the first linear layer (the observation
    in, where millimetres matter, and a small matrix) and the output layer (Q-values, action mean and scale) stay
    float32, the 256x256 products, LayerNorms and ReLUs in between do not (a Q head takes their products as they
    are and sums them in float32, `EnsembleLinear.forward`). ``dtype`` None: every layer as it is."""
    mods = list(layers)
    last = len(mods) - 1
    for i, layer in enumerate(mods):
        ens = isinstance(layer, EnsembleLinear)
        if dtype is not None and 0 < i < last:
            x = _low(layer, x.to(dtype), dtype, members)
            continue
        if i == last and x.dtype != torch.float32 and not (ens and layer.sums_head):
            x = x.float()
        x = layer(x, members) if ens else layer(x)
    return x


class Actor(nn.Module):
    """Tanh-squashed Gaussian policy over features."""

    def __init__(self, in_dim: int, cfg: AgentConfig) -> None:
        super().__init__()
        self.net = mlp(in_dim, cfg.hidden_dim, cfg.hidden_layers, 2 * cfg.action_dim)
        self.dtype = hidden_dtype(cfg)

    def forward(self, feat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, log_std = run_mixed(self.net, feat, self.dtype).chunk(2, dim=-1)
        log_std = LOG_STD_MIN + 0.5 * (LOG_STD_MAX - LOG_STD_MIN) * (torch.tanh(log_std) + 1.0)
        return mu, log_std

    def sample(self, feat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Reparameterised action in (-1, 1) and its log-probability (B,)."""
        return self.sample_from(*self(feat))

    @staticmethod
    def sample_from(mu: torch.Tensor, log_std: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """`sample` given the network's output (the mean action is then ``tanh(mu)``, no second pass)."""
        std = log_std.exp()
        u = mu + std * torch.randn_like(mu)
        a = torch.tanh(u)
        logp = (-0.5 * ((u - mu) / std) ** 2 - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)
        logp = logp - (2.0 * (math.log(2.0) - u - F.softplus(-2.0 * u))).sum(-1)
        return a, logp

    def mean_action(self, feat: torch.Tensor) -> torch.Tensor:
        mu, _ = self(feat)
        return torch.tanh(mu)


class EnsembleLinear(nn.Module):
    def __init__(self, n: int, in_dim: int, out_dim: int, plain: bool = False) -> None:
        super().__init__()
        self.plain = plain  # always one baddbmm (the update before issue 23, `agent_reference.py`)
        bound = 1.0 / math.sqrt(in_dim)
        self.weight = nn.Parameter(torch.empty(n, in_dim, out_dim).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(n, 1, out_dim).uniform_(-bound, bound))

    @property
    def sums_head(self) -> bool:
        """A Q head (one output) computed as multiply-and-sum: as a product its input gradient has an inner
        dimension of 1, which BLAS does slowly."""
        return self.weight.shape[-1] == 1 and not self.plain

    def params(self, members: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(weight, bias) of all members, or of ``members`` only, in that order."""
        return (self.weight, self.bias) if members is None else (self.weight[members], self.bias[members])

    def forward(self, x: torch.Tensor, members: torch.Tensor | None = None) -> torch.Tensor:
        """(N, B, in) -> (N, B, out); ``members``: only these ensemble members (x then (len(members), B, in)).
        A head (`sums_head`) multiplies in ``x``'s dtype (bfloat16 hidden layers) and sums in the bias's (float32)."""
        w, b = self.params(members)
        if self.sums_head:
            return (x * w.transpose(1, 2).to(x.dtype)).sum(-1, keepdim=True, dtype=b.dtype) + b
        return torch.baddbmm(b, x, w)


class CriticEnsemble(nn.Module):
    """``num_critics`` independent LayerNorm MLP Q-functions evaluated in one batched pass."""

    def __init__(self, in_dim: int, cfg: AgentConfig, plain: bool = False) -> None:
        """``plain``: every layer one ``baddbmm`` in float32, as before issue 23 (for `agent_reference.py`)."""
        super().__init__()
        self.n = cfg.num_critics
        layers: list[nn.Module] = []
        d = in_dim + cfg.action_dim
        for _ in range(cfg.hidden_layers):
            layers += [EnsembleLinear(self.n, d, cfg.hidden_dim), nn.LayerNorm(cfg.hidden_dim), nn.ReLU()]
            d = cfg.hidden_dim
        layers.append(EnsembleLinear(self.n, d, 1, plain=plain))
        self.net = nn.Sequential(*layers)
        self.dtype = None if plain else hidden_dtype(cfg)

    def forward(self, feat: torch.Tensor, action: torch.Tensor, members: torch.Tensor | None = None) -> torch.Tensor:
        """Q-values (N, B); with ``members`` (indices) only those critics, (len(members), B), in that order
        (the same values as indexing the full output, without computing the others)."""
        n = self.n if members is None else len(members)
        x = torch.cat([feat, action], dim=-1).unsqueeze(0).expand(n, -1, -1)
        return run_mixed(self.net, x, self.dtype, members).squeeze(-1)
