"""The mosaic generator: new music cut from real library recordings, steered by a target embedding.

Concatenative synthesis (audio mosaicing, in the line of Zils & Pachet 2001 and Schwarz's CataRT): the
output clip is a sequence of short segments of library tracks, chosen so that the output's windows have
the target's window embeddings and the joins are smooth. No weights, any windowed encoder.

1. **Slots.** The clip's ``duration`` is cut into slots of ``segment`` seconds. Each slot is tied to the
   target windows it overlaps by at least half (windows inside a slot when the encoder's window is
   shorter than a slot, windows holding the slot when it is longer: CLAP's 10-s windows).
2. **Target cost.** Candidates for a slot come from the library's window store (FAISS or exact search
   over every window of every track, :attr:`MusicLibrary.window_store`): the windows nearest the slot's
   main target window, placed so that the library windows around the candidate line up with the slot's
   target windows. Its target cost is the weighted mean cosine distance of those library windows to the
   targets in the store's search space. Targets are compensated for the stimulus protocol first: clips
   are evaluated after 2-s fades and RMS normalisation, library windows are not, so the mean difference
   between the library's clip windows and its plain windows at the same positions (measured on the
   library itself) is removed from each target window.
3. **Concatenation cost** (unit selection, Hunt & Black 1996): spectral and loudness continuity on both
   sides of a join (what follows segment A in its own track against B's start, A's end against what
   precedes B), tempo compatibility (local tempo from beat intervals, double/half tempo allowed) and key
   compatibility (chroma correlation); each term in units of its median over random joins of this
   library (:mod:`~brain2music.reconstruct.generators.mosaic_analysis`).
4. **Dynamic programming** (Viterbi) over the candidates of all slots minimises the sum of target costs
   plus ``continuity`` times the join costs. A segment may continue into the next slot (no join, cost 0)
   up to ``max_segment`` seconds from one source; a fresh segment never starts right where the previous one
   of the same track ended (that would be a longer copy). If the best path uses fewer than
   ``min_sources`` tracks, the most used track is kept only in its longest run and the path is solved
   again, until enough tracks take part.
5. **Rendering.** Segments start on a beat, else an onset, within ``snap`` seconds of their slot position
   (librosa's beat tracker and backtracked onsets), are played at their track's normalised level with a
   small per-segment correction that levels the joins, and are joined with ``crossfade``-second
   equal-power crossfades that end on the cut.

The result is generation, not retrieval: no stretch longer than ``max_segment`` comes from one source and
at least ``min_sources`` tracks are used (the test suite checks both by waveform cross-correlation).
``exclude`` (paths or track ids) keeps tracks out entirely; reconstruction passes the test stimuli's own
tracks. ``last_plans_`` describes the segments of the last call (source, offsets, gains, costs).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from brain2music.errors import ConfigError, DataError
from brain2music.reconstruct.generators.base import Generator
from brain2music.reconstruct.generators.mosaic_analysis import describe_units, join_cost, library_analysis

__all__ = ["MosaicGenerator", "fade_compensation", "render_segments", "slot_weights", "viterbi"]

_FETCH = 8  # nearest windows fetched per candidate kept (exclusions, duplicates, track ends)
_PER_TRACK = 2  # fresh candidates of one track per slot: the candidate lists stay diverse
_MAX_CORRECTION_DB = 6.0


def slot_weights(
    window_starts: np.ndarray, window: float, duration: float, segment: float
) -> tuple[np.ndarray, np.ndarray]:
    """Slots of ``segment`` s over ``duration`` and the target windows tied to each.

    Returns ``slots (n, 2)`` ([start, end) s) and ``weights (n, r)``: the overlap of slot and window over
    the shorter of the two, kept where it is at least one half, rows normalised to 1. A slot overlapping
    no window that well (past the end of the windows) is tied to the nearest window.
    """
    n = int(np.ceil(duration / segment - 1e-9))
    a = np.arange(n) * segment
    slots = np.stack([a, np.minimum(a + segment, duration)], axis=1)
    ws = np.asarray(window_starts, dtype=np.float64)
    lo = np.maximum(slots[:, :1], ws[None, :])
    hi = np.minimum(slots[:, 1:], ws[None, :] + window)
    overlap = np.clip(hi - lo, 0.0, None) / np.minimum(slots[:, 1:] - slots[:, :1], window)
    weights = np.where(overlap >= 0.5 - 1e-9, overlap, 0.0)
    for j in np.flatnonzero(weights.sum(axis=1) == 0):
        centre = slots[j].mean()
        weights[j, np.argmin(np.abs(ws + window / 2 - centre))] = 1.0
    return slots, weights / weights.sum(axis=1, keepdims=True)


def viterbi(unary: list[np.ndarray], pairwise: list[np.ndarray]) -> tuple[list[int], float]:
    """Minimum-cost path through layers of candidates.

    ``unary[j] (n_j,)`` are the costs of the candidates of layer ``j`` and ``pairwise[j - 1] (n_{j-1},
    n_j)`` the costs of going from a candidate of layer ``j - 1`` to one of layer ``j`` (``inf``:
    forbidden). Returns the chosen candidate per layer and the total cost (``inf`` if no path exists).
    """
    cost = np.asarray(unary[0], dtype=np.float64)
    back = []
    for j in range(1, len(unary)):
        total = cost[:, None] + pairwise[j - 1]
        best = np.argmin(total, axis=0)
        back.append(best)
        cost = total[best, np.arange(total.shape[1])] + unary[j]
    last = int(np.argmin(cost))
    path = [last]
    for b in reversed(back):
        path.append(int(b[path[-1]]))
    return path[::-1], float(cost[last])


def fade_compensation(lib, *, max_items: int = 500, random_state: int = 0) -> np.ndarray:
    """``(r, dim)``: mean of (clip window - plain track window at the same position) over library tracks.

    Clip windows (:meth:`MusicLibrary.windows`) are embedded the way stimuli are (first 15 s, 2-s fades,
    RMS-normalised clip); the window store holds the same tracks' windows without fades, RMS-normalised
    per track. Their mean difference is what the stimulus protocol adds to an embedding at each window
    position. Zeros when no track has plain windows at every clip position.
    """
    starts = lib.clip_window_starts()
    rng = np.random.default_rng(random_state)
    n = len(lib)
    chosen = np.sort(rng.choice(n, min(n, int(max_items)), replace=False))
    wanted = set(chosen.tolist())
    plain: dict[int, np.ndarray] = {}
    item = 0
    for emb, st, counts in lib.search_window_blocks():
        offsets = np.concatenate([[0], np.cumsum(counts)])
        for local in range(len(counts)):
            if item + local in wanted:
                s = st[offsets[local] : offsets[local + 1]]
                pos = np.searchsorted(s, starts - 1e-3)
                if np.all(pos < len(s)) and np.allclose(s[np.minimum(pos, len(s) - 1)], starts, atol=1e-3):
                    plain[item + local] = emb[offsets[local] + pos]
        item += len(counts)
    if not plain:
        return np.zeros((len(starts), lib.dim))
    keys = np.array(sorted(plain))
    clips = lib.windows(keys).astype(np.float64)
    return np.mean(clips - np.stack([plain[k] for k in keys]), axis=0)


class MosaicGenerator(Generator):
    """Concatenative synthesis from a ``coverage="full"`` music library (see the module docstring).

    Parameters
    ----------
    library : MusicLibrary or path
        Built with the encoder of the targets and ``coverage="full"`` (every window of every track).
    encoder : optional
        Checked against the library's encoder when given (the mosaic itself embeds nothing).
    segment : float
        Slot length (s): the unit the output is assembled from.
    max_segment : float
        Longest stretch (s) played from one source without a join (a multiple of ``segment`` is used).
    candidates : int
        Fresh candidates per slot (continuations of the previous slot's candidates come on top).
    continuity : float
        Weight of the join costs against the target costs.
    min_sources : int
        Fewest distinct library tracks in one clip.
    exclude : sequence of str
        Track paths or track ids never used (e.g. the tracks the test stimuli were cut from).
    crossfade, snap : float
        Crossfade length and how far (s) a cut may move to reach a beat or an onset.
    window_weight : float
        How much each slot follows its own target windows (1) rather than the clip's window average (0).
        Decoded windows are noisier than their average (the paper conditions its generator on the
        average alone).
    temperature : float
        Randomness of samples after the first (the first is always the best path): Gumbel noise on the
        target costs, in units of their spread within a slot.
    sr : int
        Output sample rate.
    analysis_dir : path, optional
        Where the corpus analysis is kept (default ``<library>/mosaic``).
    """

    name = "mosaic"

    def __init__(
        self,
        library: Any,
        encoder: Any = None,
        *,
        segment: float = 3.0,
        max_segment: float = 6.0,
        candidates: int = 16,
        continuity: float = 0.3,
        min_sources: int = 3,
        exclude=(),
        crossfade: float = 0.05,
        snap: float = 0.15,
        temperature: float = 0.5,
        window_weight: float = 0.5,
        sr: int = 22050,
        analysis_dir: str | os.PathLike | None = None,
        progress: bool = False,
    ):
        from brain2music.reconstruct.clip_embedding import encoder_name
        from brain2music.reconstruct.library import MusicLibrary

        self.library = library if isinstance(library, MusicLibrary) else MusicLibrary(library)
        if self.library.coverage != "full":
            raise ConfigError(
                f"generator 'mosaic' needs a library with every window of every track; {self.library.path} "
                f"has coverage {self.library.coverage!r}: rebuild it with `brain2music library build ... "
                "--coverage full`"
            )
        if encoder is not None:
            self.library.check_encoder(encoder_name(encoder), source="generator 'mosaic'")
        self.segment, self.max_segment = float(segment), float(max_segment)
        self.candidates, self.continuity = int(candidates), float(continuity)
        self.min_sources, self.crossfade, self.snap = int(min_sources), float(crossfade), float(snap)
        self.temperature, self.sr = float(temperature), int(sr)
        self.window_weight = float(window_weight)
        self.exclude = [str(e) for e in (exclude or ())]
        self.analysis_dir = analysis_dir
        self.progress = progress
        self._check()

    def _check(self) -> None:
        def need(name, ok, expected):
            if not ok:
                raise ConfigError(
                    f"generator 'mosaic': {name} must be {expected}; got {getattr(self, name)!r}"
                )

        need("segment", self.segment > 0.25, "more than 0.25 s")
        need("max_segment", self.max_segment >= self.segment, f"at least segment ({self.segment} s)")
        need("candidates", self.candidates >= 1, "at least 1")
        need("continuity", self.continuity >= 0, "non-negative")
        need("min_sources", self.min_sources >= 1, "at least 1")
        need("crossfade", 0 <= self.crossfade < self.segment / 2, f"in [0, {self.segment / 2}) s")
        need("snap", 0 <= self.snap < self.segment / 2, f"in [0, {self.segment / 2}) s")
        need("temperature", self.temperature >= 0, "non-negative")
        need("window_weight", 0 <= self.window_weight <= 1, "in [0, 1]")
        need("sr", self.sr >= 8000, "at least 8000 Hz")

    # ------------------------------------------------------------------------------------------ set-up
    def fit(self) -> MosaicGenerator:
        """Analyse the library's tracks (once; cached next to the library) and prepare the search."""
        lib = self.library
        self.analysis_ = library_analysis(
            lib, folder=self.analysis_dir, progress=self.progress, fade=fade_compensation
        )
        self.store_ = lib.window_store
        self.fade_ = np.asarray(self.analysis_.info.get("fade", np.zeros((lib.n_windows, lib.dim))))
        self.window_ = float(lib.encoder_config.get("window", lib.hop))
        self.window_starts_ = lib.clip_window_starts()
        self.excluded_ = self._excluded_items(self.exclude)
        return self

    def _excluded_items(self, exclude) -> np.ndarray:
        meta = self.library.metadata
        keys = {str(e) for e in exclude}
        resolved = {str(Path(e).resolve()) for e in keys if os.sep in e or Path(e).suffix}
        hit = meta["path"].astype(str).isin(keys | resolved) | meta["track_id"].astype(str).isin(keys)
        return meta.loc[hit, "item"].to_numpy(dtype=np.int64)

    def _ready(self) -> None:
        if not hasattr(self, "analysis_"):
            self.fit()

    # ------------------------------------------------------------------------------------ generation
    def generate(
        self, target_embedding, *, n_samples=1, duration=15.0, random_state=None, exclude=None
    ) -> tuple[np.ndarray, int]:
        """Mosaics for one target ``(r, dim)`` (or ``(dim,)``, used for every window).

        Sample 0 is the best path; later samples perturb the target costs (``temperature``).
        ``exclude`` adds tracks (paths or ids) to keep out of this call only. Returns ``audio
        (n_samples, round(duration * sr))`` float32 and ``sr``; ``last_plans_`` holds one plan per sample.
        """
        if int(n_samples) < 1:
            raise ConfigError(f"n_samples must be >= 1, got {n_samples!r}")
        if not duration or duration <= 0:
            raise ConfigError(f"duration must be a positive number of seconds, got {duration!r}")
        self._ready()
        targets = self._targets(target_embedding)
        banned = self.excluded_
        if exclude:
            banned = np.union1d(banned, self._excluded_items(exclude))
        rng = np.random.default_rng(random_state)
        slots, weights = slot_weights(self.window_starts_, self.window_, float(duration), self.segment)
        layers = self._layers(targets, slots, weights, banned)
        out = np.zeros((int(n_samples), int(round(duration * self.sr))), dtype=np.float32)
        self.last_plans_ = []
        for i in range(int(n_samples)):
            noise = None if i == 0 or self.temperature == 0 else rng
            path = self._solve(layers, noise)
            audio, plan = self._render(layers, path, slots, float(duration))
            out[i, : len(audio)] = audio[: out.shape[1]]
            self.last_plans_.append(plan)
        return out, int(self.sr)

    def _targets(self, target_embedding) -> np.ndarray:
        lib = self.library
        t = np.asarray(target_embedding, dtype=np.float64)
        if t.ndim == 1:
            t = np.broadcast_to(t, (lib.n_windows, t.shape[0]))
        if t.shape != (lib.n_windows, lib.dim):
            raise DataError(
                f"target_embedding must have shape ({lib.dim},) or ({lib.n_windows}, {lib.dim}) for the "
                f"library's encoder {lib.encoder_name!r}; got {np.shape(target_embedding)}"
            )
        if not np.all(np.isfinite(t)):
            raise DataError("target_embedding contains NaN or infinite values")
        plain = t - self.fade_
        # Decoded windows are noisier than their average: blend each with the clip's average.
        plain = self.window_weight * plain + (1.0 - self.window_weight) * plain.mean(axis=0)
        return self.store_.to_space(plain)

    # ----------------------------------------------------------------------------------- candidates
    def _rows(self, items: np.ndarray, times: np.ndarray) -> np.ndarray:
        """Window-store rows of the windows of ``items`` starting at ``times`` (-1 where none)."""
        store, hop = self.store_, self.library.hop
        a, b = store.bounds[items], store.bounds[items + 1]
        first = store.starts[np.minimum(a, len(store) - 1)]
        idx = np.round((times - first) / hop).astype(np.int64)
        rows = a + idx
        ok = (idx >= 0) & (rows < b)
        rows = np.where(ok, rows, 0)
        ok &= np.abs(store.starts[rows] - times) < hop / 4
        return np.where(ok, rows, -1)

    def _target_cost(self, items, grid, slot, weights_j, targets) -> np.ndarray:
        """Weighted cosine distance of the library windows around each candidate to the slot's targets."""
        cost = np.zeros(len(items))
        for k in np.flatnonzero(weights_j):
            rows = self._rows(items, grid + (self.window_starts_[k] - slot[0]))
            vec = np.asarray(self.store_.vectors[np.maximum(rows, 0)], dtype=np.float32)
            cost += weights_j[k] * np.where(rows >= 0, 1.0 - vec @ targets[k], np.inf)
        return cost

    def _fresh(self, rows, slot, weights_j, targets, banned) -> dict:
        """The slot's best ``candidates`` new segments (at most 2 per track), snapped to beats/onsets.

        ``rows`` are the window-store rows nearest the slot's main target; more are fetched when they
        hold too few tracks (nearby windows of one track look alike).
        """
        k = len(rows)
        while True:
            items, grid, cost = self._segments(rows, slot, weights_j, targets, banned)
            keep = _diverse(items, cost, self.candidates)
            if len(keep) == self.candidates or k >= len(self.store_):
                break
            k = min(4 * k, len(self.store_))
            rows = self._nearest(targets[[int(np.argmax(weights_j))]], k)[0]
        items, grid = items[keep], grid[keep]
        cut = np.array([self._snap(int(it), g) for it, g in zip(items, grid, strict=True)])
        return {"item": items, "grid": grid, "cut": cut, "cost": cost[keep],
                "run": np.ones(len(keep), np.int64), "parent": np.full(len(keep), -1)}  # fmt: skip

    def _nearest(self, queries: np.ndarray, k: int) -> list[np.ndarray]:
        """Window-store rows nearest each query (one search for all of them)."""
        _, rows = self.store_.nearest(
            np.ascontiguousarray(queries, dtype=np.float32), min(len(self.store_), k)
        )
        return [r[r >= 0] for r in rows]

    def _segments(self, rows, slot, weights_j, targets, banned):
        """Store rows as segments of this slot that fit their track: items, grid positions (s), target costs.

        A row is the slot's main target window's counterpart; the segment starts where the slot starts
        relative to that window."""
        store, durations = self.store_, self.analysis_.durations
        anchor = int(np.argmax(weights_j))
        items = store.items[rows].astype(np.int64)
        grid = store.starts[rows].astype(np.float64) + (slot[0] - self.window_starts_[anchor])
        ok = ~np.isin(items, banned)
        ok &= grid - self.crossfade - self.snap >= 0
        ok &= grid + (slot[1] - slot[0]) + self.snap + 0.1 <= durations[items]
        items, grid = items[ok], grid[ok]
        return items, grid, self._target_cost(items, grid, slot, weights_j, targets)

    def _snap(self, item: int, t: float) -> float:
        """``t`` moved to the nearest beat within ``snap`` s, else the nearest onset, else unchanged."""
        for times in (self.analysis_.item_beats(item), self.analysis_.item_onsets(item)):
            if len(times):
                i = int(np.argmin(np.abs(times - t)))
                if abs(times[i] - t) <= self.snap:
                    return float(times[i])
        return float(t)

    def _continuations(self, prev: dict, slot, weights_j, targets) -> dict:
        """Each previous candidate played on into this slot (while under ``max_segment``)."""
        limit = max(1, int(np.floor(self.max_segment / self.segment + 1e-9)))
        length = slot[1] - slot[0]
        sel = np.flatnonzero(prev["run"] < limit)
        items, step = prev["item"][sel], self.segment
        ok = prev["cut"][sel] + step + length + 0.1 <= self.analysis_.durations[items]
        sel, items = sel[ok], items[ok]
        grid = prev["grid"][sel] + step
        cost = self._target_cost(items, grid, slot, weights_j, targets)
        fin = np.isfinite(cost)
        sel, items, grid, cost = sel[fin], items[fin], grid[fin], cost[fin]
        return {"item": items, "grid": grid, "cut": prev["cut"][sel] + step, "cost": cost,
                "run": prev["run"][sel] + 1, "parent": sel}  # fmt: skip

    def _layers(self, targets, slots, weights, banned) -> list[dict]:
        """Candidates of every slot with their target costs, descriptors and join costs to the previous slot."""
        usable = np.setdiff1d(np.flatnonzero(self.analysis_.durations > self.segment + 1.0), banned)
        if len(usable) < self.min_sources:
            raise DataError(
                f"{self.library.path}: only {len(usable)} library track(s) are long enough and not excluded; "
                f"the mosaic needs at least min_sources = {self.min_sources}"
            )
        gains = -20 * np.log10(np.maximum(self.analysis_.rms, 1e-6))
        nearest = self._nearest(targets[np.argmax(weights, axis=1)], self.candidates * _FETCH)
        layers: list[dict] = []
        for j, slot in enumerate(slots):
            layer = self._fresh(nearest[j], slot, weights[j], targets, banned)
            if layers:
                cont = self._continuations(layers[-1], slot, weights[j], targets)
                layer = {key: np.concatenate([layer[key], cont[key]]) for key in layer}
                layer["fresh"] = np.arange(len(layer["item"])) < len(layer["item"]) - len(cont["item"])
            else:
                layer["fresh"] = np.ones(len(layer["item"]), dtype=bool)
            if len(layer["item"]) == 0:
                raise DataError(f"{self.library.path}: no library segment fits slot {j} of the mosaic")
            layer["cost"] = layer["cost"] * (slot[1] - slot[0]) / self.segment
            layer["units"] = describe_units(
                self.analysis_, layer["item"], layer["cut"], layer["cut"] + (slot[1] - slot[0]),
                gains[layer["item"]],
            )  # fmt: skip
            if layers:
                layer["join"] = self._join(layers[-1], layer)
            layers.append(layer)
        return layers

    def _join(self, prev: dict, cur: dict) -> np.ndarray:
        """``(n_prev, n_cur)``: continuity * join cost to fresh candidates, 0 from a parent, inf otherwise."""
        join = self.continuity * join_cost(prev["units"], cur["units"], self.analysis_.info["norms"])
        # No disguised continuation and no replay of the material just heard: a fresh segment of the
        # same track may not start within a segment of where the previous one started or ended.
        same = prev["item"][:, None] == cur["item"][None, :]
        near = np.abs(cur["cut"][None, :] - (prev["cut"][:, None] + self.segment / 2)) < 1.5 * self.segment
        join = np.where(same & near, np.inf, join)
        join[:, ~cur["fresh"]] = np.inf
        cont = np.flatnonzero(~cur["fresh"])
        join[cur["parent"][cont], cont] = 0.0
        return join

    # ---------------------------------------------------------------------------------------- solve
    def _solve(self, layers: list[dict], rng: np.random.Generator | None) -> list[int]:
        """Viterbi path; then ban over-used tracks until ``min_sources`` tracks take part."""
        unary = []
        for layer in layers:
            cost = layer["cost"].astype(np.float64)
            if rng is not None:
                spread = float(np.std(cost)) if len(cost) > 1 else 0.0
                cost = cost - self.temperature * max(spread, 1e-3) * rng.gumbel(size=len(cost))
            unary.append(cost)
        pairwise = [layer["join"] for layer in layers[1:]]
        if len(layers) < self.min_sources:
            raise DataError(
                f"generator 'mosaic': a clip of {len(layers)} slot(s) of {self.segment} s cannot use "
                f"min_sources = {self.min_sources} tracks; lower min_sources or segment, or generate longer clips"
            )
        path, total = viterbi(unary, pairwise)
        # Every round bans the most used track from at least one slot it holds on the path (bans
        # accumulate), so the loop ends: with enough tracks, or with no path left.
        while np.isfinite(total):
            items = [int(layers[j]["item"][c]) for j, c in enumerate(path)]
            if len(set(items)) >= self.min_sources:
                return path
            top = max(set(items), key=items.count)
            keep = _longest_segment(layers, path, top)
            if len(keep) == items.count(top):  # one run only (a long max_segment): shorten it
                keep = set(sorted(keep)[:-1])
            for j, layer in enumerate(layers):
                if j not in keep:
                    unary[j] = np.where(layer["item"] == top, np.inf, unary[j])
            path, total = viterbi(unary, pairwise)
        raise DataError(
            f"{self.library.path}: no mosaic with min_sources = {self.min_sources} among "
            f"{self.candidates} candidates per slot; raise candidates or lower min_sources"
        )

    # --------------------------------------------------------------------------------------- render
    def _render(self, layers, path, slots, duration) -> tuple[np.ndarray, dict]:
        """The plan of the chosen path (segments, levels) and its audio."""
        runs = []
        for j, c in enumerate(path):
            if j == 0 or layers[j]["fresh"][c]:
                runs.append({"first": j, "cand": c, "slots": 1})
            else:
                runs[-1]["slots"] += 1
        levels = self._level_corrections(layers, path, runs)
        meta = self.library.metadata
        plan = []
        for r, run in enumerate(runs):
            layer, last = layers[run["first"]], run["first"] + run["slots"] - 1
            item = int(layer["item"][run["cand"]])
            t_out, t_end = float(slots[run["first"], 0]), float(slots[last, 1])
            pre = self.crossfade if r > 0 else 0.0
            gain_db = -20 * np.log10(max(self.analysis_.rms[item], 1e-6)) - 20 + levels[r]
            cost = np.mean([layers[j]["cost"][path[j]] for j in range(run["first"], last + 1)])
            plan.append({"item": item, "path": str(meta.at[item, "path"]),
                         "source_start": float(layer["cut"][run["cand"]]) - pre, "output_start": t_out - pre,
                         "duration": t_end - t_out + pre, "slots": run["slots"], "gain_db": float(gain_db),
                         "target_cost": float(cost)})  # fmt: skip
        audio = render_segments(plan, sr=self.sr, crossfade=self.crossfade, duration=duration)
        return audio, {"segments": plan, "n_sources": len({p["item"] for p in plan}),
                       "longest_segment": max(p["duration"] for p in plan)}  # fmt: skip

    def _level_corrections(self, layers, path, runs) -> np.ndarray:
        """Per-run gain corrections (dB, within ±6) that level each join (least squares, shrunk to 0)."""
        n = len(runs)
        if n < 2:
            return np.zeros(n)
        gap = np.zeros(n - 1)
        for r in range(1, n):
            j = runs[r]["first"]
            a, b = layers[j - 1]["units"], layers[j]["units"]
            ca, cb = path[j - 1], path[j]
            gap[r - 1] = float(b["pred"][cb, -1] - a["tail"][ca, -1])  # dB to add to A relative to B
        # minimise sum_r (x_r - x_{r+1} - gap_r)^2 + sum_r x_r^2
        m = np.eye(n)
        rhs = np.zeros(n)
        for r in range(n - 1):
            m[r, r] += 1
            m[r + 1, r + 1] += 1
            m[r, r + 1] -= 1
            m[r + 1, r] -= 1
            rhs[r] += gap[r]
            rhs[r + 1] -= gap[r]
        return np.clip(np.linalg.solve(m, rhs), -_MAX_CORRECTION_DB, _MAX_CORRECTION_DB)

    @property
    def config(self) -> dict:
        """The library path and encoder, the mosaic options (``segment`` ... ``window_weight``), ``sr`` and
        the number of excluded tracks."""
        return {"generator": "mosaic", "library": str(self.library.path), "encoder": self.library.encoder_name,
                "segment": self.segment, "max_segment": self.max_segment, "candidates": self.candidates,
                "continuity": self.continuity, "min_sources": self.min_sources, "crossfade": self.crossfade,
                "snap": self.snap, "temperature": self.temperature, "window_weight": self.window_weight, "sr": self.sr,
                "n_excluded": len(self.exclude)}  # fmt: skip


def render_segments(segments: list[dict], *, sr: int, crossfade: float, duration: float) -> np.ndarray:
    """Play ``segments`` one after the other: ``(n,)`` float32 at ``sr``, RMS-normalised like a stimulus.

    Each segment (``path``, ``source_start``, ``output_start``, ``duration`` s, ``gain_db``) is read
    from its file and placed at ``output_start``; every segment after the first fades in over its first
    ``crossfade`` seconds while the audio already there fades out (equal power), so the crossfade ends
    where the segment's cut was.
    """
    from brain2music.stimuli import read_audio, rms_normalize

    n_out = int(round(duration * sr))
    out = np.zeros(n_out, dtype=np.float32)
    nxf = int(round(crossfade * sr))
    ramp = np.sin(0.5 * np.pi * (np.arange(nxf) + 0.5) / max(nxf, 1)).astype(np.float32)
    for r, seg in enumerate(segments):
        audio, _ = read_audio(seg["path"], sr=sr, offset=seg["source_start"], duration=seg["duration"])
        audio = audio * np.float32(10 ** (seg["gain_db"] / 20))
        a = int(round(seg["output_start"] * sr))
        audio = audio[: max(0, min(len(audio), n_out - a))]
        if r > 0 and nxf:
            audio[:nxf] *= ramp[: len(audio[:nxf])]
            out[a : a + nxf] *= ramp[::-1][: max(0, min(nxf, n_out - a))]
        out[a : a + len(audio)] += audio
    out = rms_normalize(out)
    peak = float(np.max(np.abs(out))) if out.size else 0.0
    if peak > 0.99:  # a loud segment after RMS normalisation: scale down rather than clip
        out *= np.float32(0.99 / peak)
    return out


def _diverse(items: np.ndarray, cost: np.ndarray, n: int) -> np.ndarray:
    """Indices of the ``n`` lowest finite costs, at most ``_PER_TRACK`` per item."""
    keep, seen = [], {}
    for i in np.argsort(cost, kind="stable"):
        if not np.isfinite(cost[i]) or seen.get(items[i], 0) >= _PER_TRACK:
            continue
        seen[items[i]] = seen.get(items[i], 0) + 1
        keep.append(i)
        if len(keep) == n:
            break
    return np.array(keep, dtype=np.int64)


def _longest_segment(layers: list[dict], path: list[int], item: int) -> set[int]:
    """Slots of the longest segment (a fresh candidate and its continuations) of ``item`` on ``path``."""
    best: list[int] = []
    cur: list[int] = []
    for j, c in enumerate(path):
        if layers[j]["item"][c] != item:
            cur = []
            continue
        cur = [j] if layers[j]["fresh"][c] else cur + [j]
        if len(cur) > len(best):
            best = cur
    return set(best)
