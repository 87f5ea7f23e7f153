"""Audio-classification architectures this project adds to ``transformers``' Auto classes.

Registering them makes ``AutoModelForAudioClassification.from_pretrained(FOLDER)`` load their
folders exactly as it loads a stock checkpoint, so the backend never branches on the model type.
Importing this module registers them; :mod:`server.model` imports it, so every loader does.

``logmel-cnn``: four conv blocks over log-mel filterbanks, the small-data workhorse of speech
emotion recognition. On a few hundred clips from a dozen speakers, 2-D convolutions (local in time
and frequency, shared weights) and SpecAugment masks generalise to new speakers better than a
transformer of the same size, which has too little data to learn locality itself.
``logmel-cnn-ensemble``: several such CNNs in one folder, their logits averaged.
``whisper-probe``: a frozen Whisper-base encoder (:mod:`emotion_service.whisper_encoder`, weights
checked by digest) and a small head over each clip's mean and standard deviation of one of its layers
(``encoder_layer``; the bundled probe reads layer 3 of 6).
Trained by ``python -m emotion_service.tuning.whisper_probe``: the encoder is never trained, only
the head (a few kB), so a recipe is compared in seconds once the clips' vectors are cached.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn
from transformers import (
    AutoConfig,
    AutoFeatureExtractor,
    AutoModelForAudioClassification,
    BatchFeature,
    PretrainedConfig,
    PreTrainedModel,
    SeamlessM4TFeatureExtractor,
    Wav2Vec2FeatureExtractor,
)
from transformers.modeling_outputs import SequenceClassifierOutput

from emotion_service import voice_activity


class LogMelFeatureExtractor(SeamlessM4TFeatureExtractor):
    """SeamlessM4T's Kaldi-style log-mel filterbanks, plus a robust front end whose settings it saves.

    Every setting lives in the model folder's ``preprocessor_config.json``, so training and
    serving compute the very same features. With all of them at their defaults the extractor is
    SeamlessM4T's (the first bundled model's front end).

    :param normalize_per_clip: normalise each mel bin to zero mean and unit variance over the clip
        (over its voiced frames when ``voiced_threshold_db`` is set).
    :param voiced_threshold_db: frames more than this many dB below the clip's loud frames (see
        :mod:`emotion_service.voice_activity`) are silence: runs of silence are cut down to
        ``trim_margin_s`` on each side, so leading, trailing and inner pauses do not reach the
        model, and level statistics come from voiced frames only. None: no trimming.
    :param trim_margin_s: silence kept around each voiced run, in seconds.
    :param silence_floor_dbfs: frames below this level are silence whatever the clip (digital zeros).
    :param normalize_level: divide the filterbank energies by their mean over voiced frames, so a
        clip played 30 dB quieter gives the same features.
    :param energy_floor_db: with ``normalize_level``, add a floor this many dB below the voiced
        mean to every filterbank energy before the log: the noise floor and quantisation of
        near-silent frames, which differ between microphones, stop driving the features.
    :param noise_margin_db: with ``voiced_threshold_db``, voiced frames must also be this many dB
        above the clip's noise floor (:func:`emotion_service.voice_activity.voiced_frames`), so
        the pauses of a noisy recording are trimmed like a quiet one's.
    """

    def __init__(
        self,
        normalize_per_clip: bool = False,
        voiced_threshold_db: float | None = None,
        trim_margin_s: float = 0.15,
        silence_floor_dbfs: float = -100.0,
        normalize_level: bool = False,
        energy_floor_db: float | None = None,
        noise_margin_db: float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.normalize_per_clip = normalize_per_clip
        self.voiced_threshold_db = voiced_threshold_db
        self.trim_margin_s = trim_margin_s
        self.silence_floor_dbfs = silence_floor_dbfs
        self.normalize_level = normalize_level
        self.energy_floor_db = energy_floor_db
        self.noise_margin_db = noise_margin_db
        if energy_floor_db is not None and not normalize_level:
            raise ValueError("energy_floor_db is relative to the voiced level: it needs normalize_level")
        if noise_margin_db is not None and voiced_threshold_db is None:
            raise ValueError("noise_margin_db refines voice detection: it needs voiced_threshold_db")

    @property
    def robust(self) -> bool:
        """Whether any setting beyond SeamlessM4T's is on (then only :meth:`torch_features` computes them)."""
        return self.voiced_threshold_db is not None or self.normalize_level

    def __call__(self, raw_speech: Any, **kwargs: Any) -> Any:
        if self.robust:
            # One implementation of the robust front end: training's collator gets the server's features.
            clips = [raw_speech] if isinstance(raw_speech, np.ndarray) and raw_speech.ndim == 1 else raw_speech
            features = self.torch_features([np.asarray(c, dtype=np.float32) for c in clips], torch.device("cpu"))
            return BatchFeature(features, tensor_type=kwargs.get("return_tensors"))
        kwargs.setdefault("do_normalize_per_mel_bins", self.normalize_per_clip)
        return super().__call__(raw_speech, **kwargs)

    @property
    def batches_in_torch(self) -> bool:
        """Whether :meth:`torch_features` reproduces this extractor (the legacy per-clip normalisation is numpy's)."""
        return self.robust or not self.normalize_per_clip

    @torch.no_grad()  # not inference_mode: training's collator hands these tensors to autograd
    def torch_features(self, waveforms: Sequence[np.ndarray], device: torch.device) -> dict[str, torch.Tensor]:
        """The filterbanks for a whole padded batch at once, on ``device``.

        Kaldi-style, as SeamlessM4T's numpy extractor computes them clip by clip: 25 ms frames
        every 10 ms, DC offset removed, pre-emphasis 0.97, Povey window, 512-point power
        spectrum, the extractor's own mel matrix, log with its floor; then frames past each
        clip's end zeroed, padded to an even count and stacked in pairs, with the attention mask.
        Without the robust settings equal to ``__call__`` within float32 rounding (tests/test_features.py).
        """
        frame, hop = voice_activity.FRAME, voice_activity.HOP
        lengths = torch.tensor([len(w) for w in waveforms], device=device)
        longest = max(int(lengths.max()), frame)
        batch = torch.zeros(len(waveforms), longest, device=device)
        for row, wave in enumerate(waveforms):
            batch[row, : len(wave)] = torch.as_tensor(wave, dtype=torch.float32, device=device)
        frames = (batch * 2**15).unfold(-1, frame, hop)  # (clips, frames, 400)
        frames = frames - frames.mean(dim=-1, keepdim=True)
        emphasised = torch.cat([frames[..., :1] * (1 - 0.97), frames[..., 1:] - 0.97 * frames[..., :-1]], dim=-1)
        window = torch.as_tensor(self.window, dtype=torch.float32, device=device)
        spectrum = torch.fft.rfft(emphasised * window, n=512)
        power = spectrum.real.square() + spectrum.imag.square()  # |X|^2 without abs()'s slow complex sqrt
        energies = power @ torch.as_tensor(self.mel_filters, dtype=torch.float32, device=device)
        counts = torch.where(lengths >= frame, 1 + (lengths - frame) // hop, torch.zeros_like(lengths))
        valid = torch.arange(energies.shape[1], device=device)[None, :] < counts[:, None]
        voiced = valid
        if self.voiced_threshold_db is not None:
            levels = voice_activity.frame_levels_db(frames / 2**15)
            found = voice_activity.voiced_frames(
                levels, valid, self.voiced_threshold_db, self.silence_floor_dbfs, self.noise_margin_db
            )
            # A clip with no voiced frame (a silent window) keeps all its frames: nothing to trim to.
            voiced = torch.where(found.any(dim=1, keepdim=True), found, valid)
        if self.normalize_level:
            level = (energies.mean(-1) * voiced).sum(1) / voiced.sum(1).clamp(min=1)
            energies = energies / level.clamp(min=1e-3)[:, None, None]
        if self.energy_floor_db is not None:
            features = torch.log(energies + 10 ** (-self.energy_floor_db / 10))
        else:
            features = torch.log(torch.clamp(energies, min=1.192092955078125e-07))
        if self.robust and self.normalize_per_clip:
            weights = voiced[..., None].float()
            used = weights.sum(1).clamp(min=2)
            mean = (features * weights).sum(1) / used
            variance = ((features - mean[:, None]) ** 2 * weights).sum(1) / (used - 1)
            features = (features - mean[:, None]) / torch.sqrt(variance[:, None] + 1e-7)
        if self.voiced_threshold_db is not None:
            keep = voice_activity.dilate(voiced, round(self.trim_margin_s * self.sampling_rate / hop)) & valid
            features, counts = _compact(features, keep)
        total = int(counts.max()) if len(counts) else 0
        total += total % self.stride
        features = features[:, :total]
        if features.shape[1] < total:
            features = torch.nn.functional.pad(features, (0, 0, 0, total - features.shape[1]))
        valid = torch.arange(total, device=device)[None, :] < counts[:, None]
        features = features * valid[..., None]
        stacked = features.reshape(len(waveforms), total // self.stride, -1)
        mask = valid[:, self.stride - 1 :: self.stride].to(torch.int32)
        return {"input_features": stacked, "attention_mask": mask}


def _compact(features: torch.Tensor, keep: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each clip's kept frames moved to its front, in order; returns them and each clip's count."""
    counts = keep.sum(1)
    # A stable sort of "not kept" brings kept frames first without reordering them.
    order = torch.argsort((~keep).to(torch.int8), dim=1, stable=True)
    return torch.gather(features, 1, order[..., None].expand_as(features)), counts


class LogMelCNNConfig(PretrainedConfig):
    """Shape and SpecAugment settings of a :class:`LogMelCNNForAudioClassification`.

    :param num_mel_bins: filterbank channels per frame (the feature extractor's ``num_mel_bins``).
    :param frame_stack: frames stacked into one input vector (``SeamlessM4TFeatureExtractor``'s
        ``stride``); the model unstacks them.
    :param channels: output channels of each conv block; each block halves time and frequency.
    :param dropout: dropout before the classifier.
    :param freq_mask_param: widest SpecAugment frequency mask, in mel bins (training only).
    :param time_mask_param: widest SpecAugment time mask, in frames (training only).
    :param num_freq_masks: frequency masks per clip.
    :param num_time_masks: time masks per clip.
    :param initializer_range: standard deviation of the classifier's initial weights.
    """

    model_type = "logmel-cnn"

    def __init__(
        self,
        num_mel_bins: int = 80,
        frame_stack: int = 2,
        channels: tuple[int, ...] | list[int] = (24, 48, 96, 192),
        dropout: float = 0.3,
        freq_mask_param: int = 12,
        time_mask_param: int = 30,
        num_freq_masks: int = 2,
        num_time_masks: int = 2,
        initializer_range: float = 0.02,
        **kwargs: Any,
    ) -> None:
        self.num_mel_bins = num_mel_bins
        self.frame_stack = frame_stack
        self.channels = list(channels)
        self.dropout = dropout
        self.freq_mask_param = freq_mask_param
        self.time_mask_param = time_mask_param
        self.num_freq_masks = num_freq_masks
        self.num_time_masks = num_time_masks
        self.initializer_range = initializer_range
        # The training pipeline's top-n freezing counts blocks as layers.
        self.num_hidden_layers = len(self.channels)
        super().__init__(**kwargs)


class _ConvBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False)
        self.norm = nn.BatchNorm2d(out_channels)
        self.pool = nn.MaxPool2d(2)

    def forward(self, features: torch.Tensor, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # Zeroing the padding before each conv makes a padded clip's valid frames see exactly the
        # zeros a lone clip's conv padding sees: batches of mixed lengths give the same answers.
        features = features * _frame_mask(frames, features.shape[-1])[:, None, None, :]
        # ReLU after the pool, on a quarter of the values: max and ReLU commute, the result is the same.
        features = torch.relu(self.pool(self.norm(self.conv(features))))
        return features, (frames // 2).clamp(min=1)  # a very short clip keeps one (partial) step


class _Encoder(nn.Module):
    def __init__(self, config: LogMelCNNConfig) -> None:
        super().__init__()
        widths = [1, *config.channels]
        self.layers = nn.ModuleList(_ConvBlock(a, b) for a, b in zip(widths, widths[1:]))


class LogMelCNNPreTrainedModel(PreTrainedModel):
    """What the log-mel CNN's classes share: config class, input name, weight initialisation."""

    config_class = LogMelCNNConfig
    base_model_prefix = "cnn"
    main_input_name = "input_features"

    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
        elif isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Linear):
            # Small logits at the start: pooled ReLU maxima are large, and a wide head would begin
            # far from the uniform prediction and spend epochs unlearning it.
            nn.init.normal_(module.weight, std=self.config.initializer_range)
            nn.init.zeros_(module.bias)


class LogMelCNNModel(LogMelCNNPreTrainedModel):
    """The conv stack: (batch, frames, mel x stack) filterbanks to (batch, channels, mel', frames') maps."""

    def __init__(self, config: LogMelCNNConfig) -> None:
        super().__init__(config)
        # Normalises each mel bin over the training set (the extractor leaves clips unnormalised).
        self.input_norm = nn.BatchNorm1d(config.num_mel_bins)
        self.encoder = _Encoder(config)
        self.post_init()

    def forward(
        self, input_features: torch.Tensor, attention_mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns the last block's maps and each clip's valid frames at that resolution."""
        stack = self.config.frame_stack
        batch, steps, _ = input_features.shape
        input_features = input_features.reshape(batch, steps * stack, self.config.num_mel_bins)
        length = steps * stack
        shortest = 2 ** len(self.encoder.layers)
        if length < shortest:  # each block halves time: pad a very short clip to one output step
            input_features = nn.functional.pad(input_features, (0, 0, 0, shortest - length))
        if attention_mask is None:
            frames = torch.full((batch,), length, device=input_features.device, dtype=torch.long)
        else:
            frames = attention_mask.sum(-1).long() * stack
        features = self.input_norm(input_features.transpose(1, 2))
        if self.training:
            features = self._spec_augment(features, frames)
        # (batch, 1, mel, frames) with channels-last strides (the same memory, with one channel): the
        # convs then answer channels-last maps, on which CPU convolution and max pooling run several
        # times faster than on NCHW maps (pooling took a third of the forward pass, the first conv
        # another third).
        features = features.unsqueeze(-1).permute(0, 3, 1, 2)
        for block in self.encoder.layers:
            features, frames = block(features, frames)
        return features, frames

    def _spec_augment(self, features: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
        """Zeroes random bands of mel bins and random spans of valid frames, per clip."""
        config = self.config
        batch, bins, length = features.shape
        keep = torch.ones_like(features, dtype=torch.bool)
        bin_index = torch.arange(bins, device=features.device)
        frame_index = torch.arange(length, device=features.device)
        for clip in range(batch):
            for _ in range(config.num_freq_masks):
                width = int(torch.randint(0, config.freq_mask_param + 1, ()))
                start = int(torch.randint(0, max(1, bins - width), ()))
                keep[clip] &= ~((bin_index >= start) & (bin_index < start + width))[:, None]
            valid = int(frames[clip])
            for _ in range(config.num_time_masks):
                width = min(int(torch.randint(0, config.time_mask_param + 1, ())), valid // 5)
                start = int(torch.randint(0, max(1, valid - width), ()))
                keep[clip] &= ((frame_index < start) | (frame_index >= start + width))[None, :]
        return features * keep


class _Classifier(LogMelCNNPreTrainedModel):
    """The classifiers' forward: logits from :meth:`logits`, and the loss when labels are given."""

    def logits(self, input_features: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
        raise NotImplementedError

    def forward(
        self,
        input_features: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> SequenceClassifierOutput:
        logits = self.logits(input_features, attention_mask)
        loss = None if labels is None else nn.functional.cross_entropy(logits, labels)
        return SequenceClassifierOutput(loss=loss, logits=logits)


class LogMelCNNForAudioClassification(_Classifier):
    """:class:`LogMelCNNModel`, then mean and max over valid frames, dropout and a linear head."""

    def __init__(self, config: LogMelCNNConfig) -> None:
        super().__init__(config)
        self.cnn = LogMelCNNModel(config)
        self.dropout = nn.Dropout(config.dropout)
        self.classifier = nn.Linear(2 * config.channels[-1], config.num_labels)
        self.post_init()

    def logits(self, input_features: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
        maps, frames = self.cnn(input_features, attention_mask)
        sequence = maps.mean(dim=2)  # (batch, channels, frames'): frequency pooled
        mask = _frame_mask(frames, sequence.shape[-1])[:, None, :]
        mean = (sequence * mask).sum(-1) / frames[:, None]
        peak = sequence.masked_fill(~mask, torch.finfo(sequence.dtype).min).amax(-1)
        return self.classifier(self.dropout(torch.cat([mean, peak], dim=-1)))


class LogMelCNNEnsembleConfig(LogMelCNNConfig):
    """A :class:`LogMelCNNConfig` shared by ``members`` CNNs of the same shape (``logmel-cnn-ensemble``).

    :param members: how many CNNs (seeds of one recipe) the model averages.
    """

    model_type = "logmel-cnn-ensemble"

    def __init__(self, members: int = 2, **kwargs: Any) -> None:
        if members < 1:
            raise ValueError(f"members must be at least 1, not {members}")
        self.members = members
        super().__init__(**kwargs)


class LogMelCNNEnsembleForAudioClassification(_Classifier):
    """Several :class:`LogMelCNNForAudioClassification` trained apart (different seeds), one folder:
    the logits are their mean. Averaging seeds removes much of the seed-to-seed spread a model
    trained on a few hundred clips has; the features are computed once for all members.
    Built from trained folders by ``python -m emotion_service.tuning.ensemble``."""

    config_class = LogMelCNNEnsembleConfig
    base_model_prefix = "members"

    def __init__(self, config: LogMelCNNEnsembleConfig) -> None:
        super().__init__(config)
        self.members = nn.ModuleList(LogMelCNNForAudioClassification(config) for _ in range(config.members))
        self.post_init()

    def logits(self, input_features: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
        return torch.stack([member.logits(input_features, attention_mask) for member in self.members]).mean(0)


def _frame_mask(frames: torch.Tensor, length: int) -> torch.Tensor:
    """(batch, length) booleans: True for each clip's first ``frames`` positions."""
    return torch.arange(length, device=frames.device)[None, :] < frames[:, None]


class ProbeMember(nn.Module):
    """One head: a linear layer (``w``, ``b``), or one hidden ReLU layer (``w1``, ``b1``, ``w2``, ``b2``)."""

    def __init__(self, inputs: int, labels: int, hidden: int) -> None:
        super().__init__()
        self.hidden = hidden
        if hidden:
            self.w1 = nn.Parameter(torch.zeros(hidden, inputs))
            self.b1 = nn.Parameter(torch.zeros(hidden))
            self.w2 = nn.Parameter(torch.zeros(labels, hidden))
            self.b2 = nn.Parameter(torch.zeros(labels))
        else:
            self.w = nn.Parameter(torch.zeros(labels, inputs))
            self.b = nn.Parameter(torch.zeros(labels))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if self.hidden:
            return nn.functional.linear(torch.relu(nn.functional.linear(z, self.w1, self.b1)), self.w2, self.b2)
        return nn.functional.linear(z, self.w, self.b)


class ProbeHead(nn.Module):
    """Standardises a clip vector, then averages its members' probabilities (returned as log-probabilities)."""

    def __init__(self, inputs: int, labels: int, kind: str, members: int, hidden: int) -> None:
        super().__init__()
        if kind not in ("linear", "mlp"):
            raise ValueError(f"head must be linear or mlp, not {kind!r}")
        self.register_buffer("mean", torch.zeros(inputs))
        self.register_buffer("scale", torch.ones(inputs))
        self.members = nn.ModuleList(ProbeMember(inputs, labels, hidden if kind == "mlp" else 0) for _ in range(members))

    def forward(self, vectors: torch.Tensor) -> torch.Tensor:
        z = (vectors - self.mean) / self.scale
        if len(self.members) == 1:
            return self.members[0](z)
        # The members' probabilities are averaged in float32 and floored at 1e-30: in bfloat16 a
        # member's near-zero probability underflows to 0, its log to -inf, and -inf - -inf is NaN.
        log_probs = torch.stack([m(z).float().log_softmax(-1) for m in self.members])
        return log_probs.exp().mean(0).clamp_min(1e-30).log().to(z.dtype)


class WhisperProbeConfig(PretrainedConfig):
    """A :class:`WhisperProbeForAudioClassification`'s head.

    :param head: ``linear`` (logistic regression) or ``mlp`` (one hidden ReLU layer).
    :param members: heads whose probabilities are averaged (seeds of one recipe).
    :param hidden_size: the MLP's hidden width (unused by ``linear``).
    :param embedding_size: the encoder vector's size (mean and std of Whisper base's 512-d layer).
    :param encoder_layer: the encoder layer the head reads (0: the input embedding, 6: the last);
        only the blocks up to it run.
    """

    model_type = "whisper-probe"

    def __init__(self, head: str = "linear", members: int = 1, hidden_size: int = 256, embedding_size: int = 1024,
                 encoder_sha256: str = "", encoder_layer: int = 6, **kwargs: Any) -> None:  # fmt: skip
        from emotion_service.whisper_encoder import LAYERS

        if not isinstance(encoder_layer, int) or not 0 <= encoder_layer <= LAYERS:
            raise ValueError(f"encoder_layer={encoder_layer!r}: Whisper base's layers are 0 (the input) to {LAYERS} (the last)")
        self.head = head
        self.encoder_layer = encoder_layer
        self.members = members
        self.hidden_size = hidden_size
        self.embedding_size = embedding_size
        # The digest of the weights the head was trained on: loading refuses any other encoder.
        self.encoder_sha256 = encoder_sha256
        super().__init__(**kwargs)


class WhisperProbeForAudioClassification(PreTrainedModel):
    """Raw 16 kHz waveforms (``input_values`` with an ``attention_mask``) to emotion logits.

    Each clip's valid samples are encoded alone by the shared frozen encoder (not a module of this
    model: it is not trained, converted or saved with the head), then the head scores them.
    A clip's answer does not depend on its batch, so the batcher may pad mixed lengths together.
    """

    config_class = WhisperProbeConfig
    main_input_name = "input_values"

    def __init__(self, config: WhisperProbeConfig) -> None:
        super().__init__(config)
        from emotion_service.whisper_encoder import MODEL_SHA256

        if config.encoder_sha256 and config.encoder_sha256 != MODEL_SHA256:
            raise ValueError(f"this head was trained on encoder {config.encoder_sha256}, not the pinned {MODEL_SHA256}")
        self.head = ProbeHead(config.embedding_size, config.num_labels, config.head, config.members, config.hidden_size)
        self.post_init()

    def _init_weights(self, module: nn.Module) -> None:
        """The head is always loaded from a trained folder; nothing to initialise."""

    def forward(
        self,
        input_values: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> SequenceClassifierOutput:
        from emotion_service.whisper_encoder import shared_encoder

        encoder = shared_encoder(str(input_values.device), self.config.encoder_layer)  # cuda:N stays on GPU N
        lengths = attention_mask.sum(-1).tolist() if attention_mask is not None else [input_values.shape[-1]] * len(input_values)
        audio = input_values.float().cpu().numpy()
        vectors = encoder.embed([audio[i, : int(n)] for i, n in enumerate(lengths)])
        logits = self.head(torch.as_tensor(vectors, device=input_values.device, dtype=self.head.mean.dtype))
        loss = None if labels is None else nn.functional.cross_entropy(logits.float(), labels)
        return SequenceClassifierOutput(loss=loss, logits=logits)


AutoConfig.register(LogMelCNNConfig.model_type, LogMelCNNConfig)
AutoModelForAudioClassification.register(LogMelCNNConfig, LogMelCNNForAudioClassification)
AutoFeatureExtractor.register(LogMelCNNConfig, LogMelFeatureExtractor)
AutoConfig.register(LogMelCNNEnsembleConfig.model_type, LogMelCNNEnsembleConfig)
AutoModelForAudioClassification.register(LogMelCNNEnsembleConfig, LogMelCNNEnsembleForAudioClassification)
AutoFeatureExtractor.register(LogMelCNNEnsembleConfig, LogMelFeatureExtractor)
AutoConfig.register(WhisperProbeConfig.model_type, WhisperProbeConfig)
AutoModelForAudioClassification.register(WhisperProbeConfig, WhisperProbeForAudioClassification)
AutoFeatureExtractor.register(WhisperProbeConfig, Wav2Vec2FeatureExtractor)
