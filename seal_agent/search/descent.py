"""Descent: a visited patch's cue ranks its children (or, on vstar, sends the search
to native tiles or a window on its map's peak) and queues them on the frontier."""

from __future__ import annotations

import math

import numpy as np
from PIL import Image

from seal_agent.imaging.geometry import Box, ViewTransform, split_box
from seal_agent.search.closer_looks import MIN_ZOOM_GAIN
from seal_agent.search.frontier import Node, NodeKind
from seal_agent.search.priority import (
    HeatmapMass,
    ancestor_weighted_priority,
    child_probability,
    mix_distributions,
    normalise_heatmap,
)
from seal_agent.search.protocol import PatchPrediction
from seal_agent.search.run_state import NATIVE_TOLERANCE, RunState
from seal_agent.search.signal import peak_cell, peak_share, peak_signal
from seal_agent.search.tiling import native_tiles, zoom_window

#: vstar: how much of a parent's belief in a child is the child's share of its area
#: rather than of the cue's mass, for a cue above its threshold and for a weak one.
STRONG_CUE_UNIFORM = 0.1
WEAK_CUE_UNIFORM = 0.5
#: vstar: a coarse view whose target (and context) heatmaps peak no higher than noise
#: would (signal.peak_signal below this) carries no signal to descend by.
FLAT_SIGNAL = 1.0
#: vstar: a target cue above its threshold whose bright cells lie at least this much
#: within one native window points at one place: look there next.
PEAK_WINDOW_SHARE = 0.8


class Descent(RunState):
    """What a visited patch queues below it, ranked by which cue."""

    # -- cues and children ---------------------------------------------------------------
    def _expand(
        self,
        node: Node,
        index: int,
        view: Image.Image,
        frame: ViewTransform,
        per_phrase: list[PatchPrediction],
    ) -> tuple[str, str | None]:
        """Queue the node's children; returns the cue that ranked them and its phrase."""
        children = [c for c in self._children(node.patch) if c != node.patch]
        if not children:
            return "none", None
        if not self.guided:
            # Uninformed orders need no cue: the frontier ignores priorities.
            self.frontier.push_children(
                [Node(c, node.level + 1, index, kind="split") for c in children]
            )
            return "none", None
        heatmap, cue, phrase, strong = self._cue(node, view, frame, per_phrase)
        if (
            self.strategy == "vstar"
            and self.cfg.signal_descent
            and self._descend_by_signal(
                node, index, frame, per_phrase, heatmap, strong or cue == "context"
            )
        ):
            return cue, phrase
        if (
            self.strategy == "vstar"
            and not strong
            and self._tiles_below_weak_cue(node, index, heatmap)
        ):
            return cue, phrase
        if self.ride_along and not strong and node.level > 1:
            self._queue_peeks(node, index, frame, heatmap)
        if self.is_seal or self.cfg.priority == "reference":
            # The reference: sum over the patch and its ancestors of their heatmap's
            # share in the child, weighted 1/4**level.
            lineage = (*node.lineage, HeatmapMass.from_heatmap(heatmap, node.patch, node.level))
            nodes = [
                Node(
                    c,
                    node.level + 1,
                    index,
                    priority=ancestor_weighted_priority(c, lineage),
                    kind="split",
                    lineage=lineage,
                )
                for c in children
            ]
        else:
            # vstar departs from seal: the priority is the probability that the target
            # lies in the patch, P(child) = P(parent) x the parent's belief in the child,
            # the belief mixing the cue's share with the area share (weight 0.1 for a
            # cue above its threshold, 0.5 for a weak one: half noise). The reference's
            # level-weighted sum lets the root's blurry heatmap outvote everything seen
            # later and, measured on shape world, needs ~1.5x more patches; with a
            # sharp cue the product goes straight down, with a weak one it stays broad.
            cue_mass = HeatmapMass.from_heatmap(heatmap, node.patch, node.level)
            floor = STRONG_CUE_UNIFORM if strong else WEAK_CUE_UNIFORM
            if (
                self.cfg.tie_weak_root
                and not strong
                and cue == "context"
                and node.kind == "root"
                and self.speculate
            ):
                # vstar departs from seal: below a root whose target cue is below its
                # threshold, the children are equally likely (area shares). The root is
                # the coarsest view: a target there is a few model pixels wide, and
                # what its weak map (and the context mixed in) prefers is mostly not
                # where the target is; ranked by it, the children went one by one or
                # two by two. Equal, they tie and share pass 2, and each one's own map
                # ranks what lies below it. Measured with this release's other rules
                # (search_passes.py --n 30, 37 targets): passes 2.59 -> 2.41
                # (reference), 4.86 -> 4.49 (weak heatmap), 3.32 -> 3.11 (fallible);
                # patches 4.68 -> 5.11, 20.0 -> 19.4, 9.7 -> 9.5; success unchanged.
                # But the graph's searches (vstar_shapeworld.py --n 24 --seed 0) pay
                # 7.12 -> 8.54 patches per question: off by default (tie_weak_root).
                floor = 1.0
            nodes = _believed(children, node, index, cue_mass, floor, "split")
        self.frontier.push_children(nodes)
        return cue, phrase

    def _tiles_below_weak_cue(self, node: Node, index: int, heatmap: np.ndarray) -> bool:
        """vstar: queue the native tiles of a patch few of them cover, below a weak cue
        (True), instead of its 2x2 children.

        vstar departs from seal: a cue below its threshold cannot single out a child,
        and the last levels above native detail buy nothing then: a patch that six
        native tiles cover (about 1000x750 at a 512 px input) has 2x2 children seen at
        ~0.9x, still coarse, each split again into four upsampled leaves, 21 views to
        cover it at native detail against its 6 tiles. With a cue above its threshold
        the map points at one child and the 2x2 split stays (fewer views). Measured on
        shape world (search_passes.py --n 30, 37 targets; weak_cue_tiles 0 -> 6): weak
        heatmap 17.9 -> 15.8 patches, 4.97 -> 4.68 forward passes; fallible 11.1 ->
        10.9, 3.65 -> 3.62; reference unchanged (4.51, 2.89); success unchanged. 4
        tiles: weak 20.2 patches; 9: 16.0; 12: 17.5.
        """
        most = self.cfg.weak_cue_tiles
        if most < 2:
            return False
        return self._queue_native_tiles(node, index, heatmap, WEAK_CUE_UNIFORM, most)

    def _queue_native_tiles(
        self, node: Node, index: int, heatmap: np.ndarray, floor: float, most: int | None = None
    ) -> bool:
        """Queue the native tiles that cover ``node`` as its children, each at the
        parent's probability times its belief in the tile (``floor``: the area share's
        weight); False, queueing nothing, where fewer than 2 (or more than ``most``)."""
        margin = math.ceil(self.cfg.split_overlap * self.input_size)
        tiles = native_tiles(node.patch, self.input_size, margin)
        if len(tiles) < 2 or (most is not None and len(tiles) > most):
            return False
        cue_mass = HeatmapMass.from_heatmap(heatmap, node.patch, node.level)
        self.frontier.push_children(_believed(tiles, node, index, cue_mass, floor, "tile"))
        return True

    def _descend_by_signal(
        self,
        node: Node,
        index: int,
        frame: ViewTransform,
        per_phrase: list[PatchPrediction],
        heatmap: np.ndarray,
        steered: bool,
    ) -> bool:
        """vstar: native tiles below a coarse view without signal or steer (True: children
        queued), and a native window on a telling map's single peak (queued next; returns
        False). ``steered``: the target cue cleared its threshold, or a context cue was
        mixed in.

        vstar departs from seal: the reference descends 2x2 through every coarse view
        whatever its heatmap shows. A real detector's map holds nothing for an object a
        few model pixels wide (issue 7: below ~40 px a face detector's map is flat), so
        such views cost patches and steer nowhere; below one, the search steps straight
        to the native-resolution tiles of the patch, ranked by whatever signal there is
        and scored in batches, which bounds a flat search by the sliding window's cost.
        Conversely a map above its threshold whose bright cells all lie in one native
        window has said where to look: that window is looked at next, skipping the
        levels in between (the children stay queued in case it shows nothing).

        vstar departs from seal: below such a view the native tiles are queued in raster
        order (each gets the parent's probability times its area share), not ranked by
        the map's residual mass. A map without signal has nothing to rank by, and what
        it does show is what the model half-sees at the wrong scale: on photo world the
        Haar cascade's faint windows on textures, exactly where its confident false
        boxes are, so a ranked search met a false box before the face; raster order is
        blind to them, as the sliding window is. Measured on benchmarks/real_photos.py
        (n 16): forward passes 18.6 -> 13.4 (whole batches of sibling tiles), success
        unchanged at 31 %.

        vstar departs from seal: a target cue below its threshold with no context cue to
        mix in counts as no signal, however peaked (``steered`` False). By the model's
        own calibration nothing is made out, and with no context the peak is the
        model's half-seen guess at the wrong scale (the cascade's textures again);
        descending 2x2 by it paid for coarse views and led to textures. With a context
        cue (shape world's "on a table") the mix still steers. Measured on
        benchmarks/real_photos.py (n 16, with the second look): vstar 38 % -> 56 %
        success, 18.3 -> 11.4 forward passes, 66.6 -> 64.4 patches. A model that
        declares ``framing_invariant`` (never confidently wrong, e.g. shape world's
        reference model) is trusted to steer by its weak map: there the sub-threshold
        peak is the target's own evidence, and raster tiles cost the graph's
        cue-less searches 3.7x the patches (a 12 px circle on 7680x4320: 26 -> 97).
        """
        scale = min(frame.scale_x, frame.scale_y)
        if scale * NATIVE_TOLERANCE >= 1.0:
            return False
        signal = max(peak_signal(per_phrase[0].heatmap), peak_signal(heatmap))
        if signal < FLAT_SIGNAL or not (steered or self.framing_invariant):
            # raster order: every tile at its area share (see above)
            return self._queue_native_tiles(node, index, heatmap, 1.0)
        strong = per_phrase[0].cue_strength > self.th.cue_threshold_at(node.level)
        # vstar departs from seal: a model that declares ``framing_invariant`` is also
        # looked at through a native window on its map's single peak when its target cue
        # is below the threshold (a guess): for such a model the sub-threshold peak is
        # the target's own evidence more often than not. The guess shares its pass with
        # what the search would score next (run()), so a wrong one costs a patch, not a
        # pass. Measured (search_passes.py --n 30, 37 targets; the other rules of this
        # release on): reference model 2.89 -> 2.59 forward passes, 4.51 -> 4.41
        # patches, 5 targets of 37 found in 2 passes instead of 3; as urgent closer
        # looks that went alone, 2.97 (a wrong guess cost a pass). Weak-heatmap mode
        # unchanged (its maps never single out one window). Not for fallible models:
        # their native views of the peak's clutter hold their false boxes (fallible mode
        # 97.3 -> 91.9 % success).
        if strong or (self.framing_invariant and self.cfg.guess_windows):
            target = normalise_heatmap(per_phrase[0].heatmap)
            cell = peak_cell(target, node.patch)
            window = zoom_window(cell, self.width, self.height, self.input_size)
            window_scale = self.input_size / max(window.width, window.height)
            if (
                window_scale >= MIN_ZOOM_GAIN * scale
                and peak_share(target, node.patch, window) >= PEAK_WINDOW_SHARE
                and not any(w.contains(cell) for w in self.zoom_windows)
            ):
                self._push_zoom(window, node, index, cell, guess=not strong)
        return False

    def _queue_peeks(
        self, node: Node, index: int, frame: ViewTransform, heatmap: np.ndarray
    ) -> None:
        """vstar: native windows on a weak cue's brightest places, to ride along in
        forward passes that have room (run()).

        vstar departs from seal: a weak cue cannot single out a child, so its near-tied
        children share a pass (TIE_BATCH_RATIO) that usually has room left; the room is
        filled with native-detail windows on the places the weak map finds brightest
        (each window's cells suppressed before the next is picked). A window that shows
        the target ends the search a level or two early; one that does not costs a
        patch, not a pass. Only below the root: the root is the coarsest view (a small
        target a few pixels wide), and its windows cost patches without saving passes.
        Measured on shape world (search_length.py --mode all --n 30, 37 targets, with
        context_first): forward passes 3.16 -> 2.76 (reference), 5.03 -> 4.54 (weak
        heatmap), 4.68 -> 4.19 (fallible); patches 4.86 -> 5.00, 17.0 -> 17.5,
        7.3 -> 7.8; success unchanged. Windows from the root as well: passes no lower on
        the reference (2.76), patches 5.9 (above 5.5), fallible success 94.6 -> 86.5 %
        (more native views, more of its false boxes). Off by default
        (``SearchConfig.peek_windows``): on real photos (real_photos.py --n 16, Haar
        faces) they cost one face of 16 (31 -> 25 %) to a false box on clutter seen
        at native detail, and +11 % patches, for -8 % passes: a weak map's bright
        places are exactly the target-like clutter a fallible detector fires on.
        """
        scale = min(frame.scale_x, frame.scale_y)
        rows, cols = heatmap.shape
        if rows * cols < 2:
            return
        cue_mass = HeatmapMass.from_heatmap(heatmap, node.patch, node.level)
        if cue_mass.total <= 0:
            return
        parent_p = node.priority if node.priority is not None else 1.0
        cw, ch = node.patch.width / cols, node.patch.height / rows
        left = np.asarray(heatmap, dtype=np.float64).copy()
        peeks: list[Node] = []
        for _ in range(self.batch_size):
            flat = int(np.argmax(left))
            r, c = divmod(flat, cols)
            if not left[r, c] > 0:
                break
            cell = Box(
                node.patch.x1 + c * cw,
                node.patch.y1 + r * ch,
                node.patch.x1 + (c + 1) * cw,
                node.patch.y1 + (r + 1) * ch,
            )
            window = zoom_window(cell, self.width, self.height, self.input_size)
            if self.input_size / max(window.width, window.height) < MIN_ZOOM_GAIN * scale:
                break  # no sharper than the view that asked for it
            c1 = max(0, math.floor((window.x1 - node.patch.x1) / cw))
            c2 = min(cols, math.ceil((window.x2 - node.patch.x1) / cw))
            r1 = max(0, math.floor((window.y1 - node.patch.y1) / ch))
            r2 = min(rows, math.ceil((window.y2 - node.patch.y1) / ch))
            left[r1:r2, c1:c2] = 0.0
            left[r, c] = 0.0
            share = cue_mass.share(window)
            peeks.append(
                Node(
                    window,
                    node.level + 1,
                    index,
                    priority=parent_p * share,
                    kind="zoom",
                    spare=True,
                )
            )
        self.frontier.push_spare(peeks, keep=self.batch_size)

    def _peek_wanted(self, node: Node) -> bool:
        """A spare window is scored only if no window scored so far holds its centre."""
        cx, cy = node.patch.center
        centre = Box(cx, cy, cx, cy)
        if any(w.contains(centre) for w in self.zoom_windows):
            return False
        self.zoom_windows.append(node.patch)
        return True

    def _children(self, patch: Box) -> list[Box]:
        if not self.is_seal and self.cfg.native_tiles > 0:
            # Optional (off by default): when a few native-resolution tiles cover the
            # patch, they are its children. Splitting 2x2 again overshoots (a 1266x949
            # patch gives 713x534 children, still above a 512 px input, then 16
            # upsampled grandchildren), so tiles make an exhaustive search ~3x cheaper;
            # but the 713x534 children, seen at 0.7x, already show most targets, and a
            # guided search measured ~25 % more patches with tiles than without.
            margin = math.ceil(self.cfg.split_overlap * self.input_size)
            tiles = native_tiles(patch, self.input_size, margin)
            if len(tiles) <= self.cfg.native_tiles:
                return tiles
        return split_box(patch, self.overlap)

    def _cue(
        self,
        node: Node,
        view: Image.Image,
        frame: ViewTransform,
        per_phrase: list[PatchPrediction],
    ) -> tuple[np.ndarray, str, str | None, bool]:
        """The map that ranks the children, which cue it is, its phrase, and whether the
        target cue was strong (above the level's threshold)."""
        target_pred = per_phrase[0]
        target = normalise_heatmap(target_pred.heatmap)
        if target_pred.cue_strength > self.th.cue_threshold_at(node.level):
            return target, "target", None, True
        phrase = self._context(view)
        if phrase is None:  # no context available: the target heatmap is all there is
            return target, "target", None, False
        if len(per_phrase) > 1:
            context_heatmap = per_phrase[1].heatmap
        else:
            # seal: the reference scores the context phrase in a second pass for every
            # weak-cue patch. vstar: only the first weak-cue patch gets one (the phrase
            # was not known when it was scored); every later call scores both phrases.
            if self.cfg.max_calls is not None and self.patches_scored >= self.cfg.max_calls:
                return target, "target", None, False
            context_heatmap = self._predict([view], [phrase], [frame])[0][0].heatmap
        context = normalise_heatmap(context_heatmap)
        if self.is_seal or self.cfg.weak_cue == "context":
            return context, "context", phrase, False
        if self.cfg.weak_cue == "target":
            return target, "target", None, False
        if context.shape != target.shape:  # a model with per-phrase grids: cannot mix
            return context, "context", phrase, False
        # vstar departs from seal: a weak target cue is still evidence (a blurry blob
        # that looks more like the target than its neighbours), so it is mixed with the
        # context, half and half as distributions, instead of being thrown away; the
        # context then decides between regions the target cue cannot tell apart.
        return mix_distributions([target, context], [0.5, 0.5]), "context", phrase, False


def _believed(
    boxes: list[Box], node: Node, index: int, cue_mass: HeatmapMass, floor: float, kind: NodeKind
) -> list[Node]:
    """``node``'s children over ``boxes``, each at P(parent) x the parent's belief in it
    (the cue's share mixed with the area share, weight ``floor``)."""
    parent_p = node.priority if node.priority is not None else 1.0
    return [
        Node(
            b,
            node.level + 1,
            index,
            priority=child_probability(parent_p, cue_mass, b, floor),
            kind=kind,
        )
        for b in boxes
    ]
