"""Applying a `ScheduleConfig` to a fused conv2d / dense TensorIR function (`tvm.s_tir.Schedule`).

The functions come from Relax's LegalizeOps + FuseOps + FuseTIR: a padding block (``pad_temp``), the
main reduction block (``conv2d_nchw``, ``group_conv2d_nchw`` or ``matmul``, loops n, oc, oh, ow, rc,
ry, rx / i, j, k) and elementwise epilogue blocks (bias add, clip, residual add). Two templates:

- **tiled** (every conv with an output map, dense, and any config that asks for it):
  1. inline the padding into the conv's reads, or leave it as its own (parallel) stage;
  2. inline the epilogue chain into its last block, and fuse that block into the conv's innermost
     outer tile (or leave it as its own parallel, vectorised loop nest);
  3. split the output channel, row, column and reduction axes by the config's tiles and order the
     outer tiles as the config says, the reduction loops next, the inner tiles last (the vectorised
     one innermost). With ``vectorize="ow"`` and a tile that spans whole rows (``tile_ow`` equal to the
     map's width), the row and column tiles are fused into one vector loop: on a 4x4 map a 4x4 tile is
     one 16-lane vector over contiguous memory instead of four 4-lane ones;
  4. parallelise, vectorise (then hoist the reduction's initialisation), and unroll.
- **rfactor** (a pointwise conv on a 1x1 map, a matrix-vector product, with ``vectorize="ow"`` and
  ``tile_ic > 1``): the weight layout is OIHW, so a row of weights is contiguous along the input
  channels while the output channels are ``C_in`` apart. Vectorising over output channels would read
  the weights with a gather; here the reduction is split by ``tile_ic`` and factored (`rfactor`) into
  ``tile_ic`` partial sums, the lanes of one vector loop over contiguous weights, with ``tile_oc``
  output channels per step sharing each input vector; the partial sums are added and the epilogue
  applied per parallel tile of output channels. On such a layer an output column does not exist
  ("ow" has extent 1), so "ow" is read as "the contiguous axis", which is the input channels there.

Parallel loops: "outer" fuses the leading outer tile loops until they hold at least `PARALLEL_MIN`
iterations (extent-1 loops, e.g. the rows of a 1x1 map, never make a parallel loop of one);
"outer2" fuses one more loop beyond that.

A config that does not fit the function's shape raises `ConfigDoesNotFit` with the reason, before any
scheduling; the resulting schedule's trace is what the tuning database stores.
"""

from __future__ import annotations

from typing import Any

from schedules.explicit.space import ConfigDoesNotFit, LayerShape, check_fits
from schedules.records import ScheduleConfig

__all__ = ["apply_config", "main_block_kind", "layer_shape_of", "template_of", "MAIN_BLOCKS", "PARALLEL_MIN"]

MAIN_BLOCKS = {"conv2d_nchw": "conv2d", "group_conv2d_nchw": "group_conv2d", "depthwise_conv2d_nchw": "group_conv2d",
               "matmul": "dense", "T_matmul_NT": "dense", "NT_matmul": "dense"}

#: the fewest iterations a parallel loop is given when the loops allow it (a few per core on small CPUs)
PARALLEL_MIN = 8


def _blocks(sch) -> list[str]:
    return [sch.get(b).name_hint for b in sch.get_child_blocks(sch.get_sblock("root"))]


def main_block_kind(func) -> tuple[str, str] | None:
    """(main block name, kind) of a fused function this module can schedule, else None."""
    import tvm

    sch = tvm.s_tir.Schedule(func)
    for name in _blocks(sch):
        if name in MAIN_BLOCKS:
            return name, MAIN_BLOCKS[name]
    return None


def layer_shape_of(func) -> LayerShape:
    """The tiled loop extents of the function's main block."""
    import tvm

    found = main_block_kind(func)
    if found is None:
        raise ConfigDoesNotFit("no conv2d or dense block in this function")
    name, kind = found
    sch = tvm.s_tir.Schedule(func)
    extents = [int(sch.get(loop).extent) for loop in sch.get_loops(sch.get_sblock(name))]
    if kind == "dense":
        return LayerShape("dense", extents[1], 1, 1, extents[2])
    _, oc, oh, ow, rc, ry, rx = extents
    if kind == "group_conv2d":
        layer_kind = "depthwise_conv2d" if rc == 1 else "conv2d"
    else:
        layer_kind = "pointwise_conv2d" if ry == rx == 1 else "conv2d"
    return LayerShape(layer_kind, oc, oh, ow, rc)


def template_of(shape: LayerShape, config: ScheduleConfig) -> str:
    """"rfactor" or "tiled": which template `apply_config` uses for `config` on `shape` (see above)."""
    if shape.is_matvec and shape.kind == "pointwise_conv2d" and config.vectorize == "ow" and config.tile_ic > 1:
        return "rfactor"
    return "tiled"


def _parallel_prefix(sch, loops: list, parallel: str) -> list:
    """The leading `loops` that `parallel` fuses into one parallel loop (see the module docstring)."""
    if parallel == "none" or not loops:
        return []
    extents = [int(sch.get(loop).extent) for loop in loops]
    count, total = 0, 1
    for extent in extents:
        count += 1
        total *= extent
        if total >= PARALLEL_MIN:
            break
    if parallel == "outer2":
        count = min(len(loops), count + 1)
    return loops[:count]


def apply_config(func, config: ScheduleConfig) -> Any:
    """A `tvm.s_tir.Schedule` of `func` scheduled by `config` (raises `ConfigDoesNotFit` with a reason)."""
    import tvm

    found = main_block_kind(func)
    if found is None:
        raise ConfigDoesNotFit("no conv2d or dense block in this function")
    shape = layer_shape_of(func)
    check_fits(config, shape)
    main_name, kind = found
    sch = tvm.s_tir.Schedule(func)
    names = _blocks(sch)
    pos = names.index(main_name)
    producers, epilogue = names[:pos], names[pos + 1:]

    # Step 1. Padding.
    pad_stages = []
    for name in producers:
        if config.inline_pad:
            sch.compute_inline(sch.get_sblock(name))
        else:
            pad_stages.append(name)
    # Step 2. Epilogue chain -> its last block.
    for name in epilogue[:-1]:
        sch.compute_inline(sch.get_sblock(name))
    if template_of(shape, config) == "rfactor":
        _rfactor_matvec(sch, main_name, epilogue[-1] if epilogue else None, config)
    else:
        _tiled(sch, main_name, kind, shape, epilogue[-1] if epilogue else None, config)
    for name in pad_stages:
        pad_loops = sch.get_loops(sch.get_sblock(name))
        sch.parallel(sch.fuse(*pad_loops[:2]))
    return sch


def _place_epilogue(sch, last_name: str | None, at_loop, depth: int, config: ScheduleConfig) -> None:
    """Fuse the epilogue's last block into the tile at `at_loop` (`depth` loops deep), or give it its
    own parallel loop nest."""
    if last_name is None:
        return
    last = sch.get_sblock(last_name)
    if config.fuse_epilogue:
        sch.reverse_compute_at(last, at_loop)
        ep_loops = sch.get_loops(last)[depth:]
    else:
        ep_loops = sch.get_loops(last)
        sch.parallel(sch.fuse(*ep_loops[:2]))
        ep_loops = []
    if ep_loops and config.vectorize != "none":
        sch.vectorize(ep_loops[-1])


def _tiled(sch, main_name: str, kind: str, shape: LayerShape, last_name: str | None, config: ScheduleConfig) -> None:
    main = sch.get_sblock(main_name)
    # Step 3. Tiling and loop order.
    loops = sch.get_loops(main)
    if kind == "dense":
        i, j, k = loops
        j_o, j_i = sch.split(j, [None, config.tile_oc])
        k_o, k_i = sch.split(k, [None, config.tile_ic])
        sch.reorder(i, j_o, k_o, k_i, j_i)
        outer, spatial_outer, red_outer, vec = [j_o], [i, j_o], k_o, (j_i if config.vectorize != "none" else None)
    else:
        n, oc, oh, ow, rc, ry, rx = loops
        oc_o, oc_i = sch.split(oc, [None, config.tile_oc])
        oh_o, oh_i = sch.split(oh, [None, config.tile_oh])
        ow_o, ow_i = sch.split(ow, [None, config.tile_ow])
        rc_o, rc_i = sch.split(rc, [None, config.tile_ic])
        by = {"o": (oc_o, oc_i), "h": (oh_o, oh_i), "w": (ow_o, ow_i)}
        outer = [by[c][0] for c in config.loop_order]
        inner = [by[c][1] for c in config.loop_order]
        vec = {"oc": oc_i, "ow": ow_i}.get(config.vectorize)
        # whole-row tiles: the row and column tiles are one contiguous run, vectorised as one loop
        rows_too = vec is not None and config.vectorize == "ow" and config.tile_ow == shape.out_w \
            and config.tile_oh > 1
        if vec is not None:
            last_two = [oh_i, ow_i] if rows_too else [vec]
            inner = [loop for loop in inner if not any(loop.same_as(v) for v in last_two)] + last_two
        sch.reorder(n, *outer, rc_o, ry, rx, rc_i, *inner)
        if rows_too:
            vec = sch.fuse(oh_i, ow_i)
        spatial_outer, red_outer = [n, *outer], rc_o
    # Step 4. Epilogue placement.
    _place_epilogue(sch, last_name, outer[-1], len(spatial_outer), config)
    # Step 5. Parallel outer loops (fused into one parallel loop), reduction init, vectorise, unroll.
    prefix = _parallel_prefix(sch, spatial_outer, config.parallel)
    if prefix:
        sch.parallel(sch.fuse(*prefix) if len(prefix) > 1 else prefix[0])
    if vec is not None:
        # Vectorise while the block still owns its init (a reduction block), then hoist the init out
        # of the reduction loops: its copy of the vector loop stays vectorised.
        sch.vectorize(vec)
        sch.decompose_reduction(main, red_outer)
    if config.unroll:
        sch.annotate(red_outer, "pragma_auto_unroll_max_step", config.unroll)
        sch.annotate(red_outer, "pragma_unroll_explicit", 1)


def _rfactor_matvec(sch, main_name: str, last_name: str | None, config: ScheduleConfig) -> None:
    # Step 3. Partial sums: rf[n, oc, oh, ow, lane] over rc_o, lanes = rc_i (contiguous weights).
    main = sch.get_sblock(main_name)
    n, oc, oh, ow, rc, ry, rx = sch.get_loops(main)
    rc_o, rc_i = sch.split(rc, [None, config.tile_ic])
    rf = sch.rfactor(rc_i, 4)
    n, oc, oh, ow, rc_o, rc_i, ry, rx = sch.get_loops(rf)
    oc_o, oc_i = sch.split(oc, [None, config.tile_oc])
    # each input vector (rc_o) is read once for tile_oc rows of weights
    sch.reorder(n, oc_o, oh, ow, rc_o, ry, rx, oc_i, rc_i)
    # Step 4. The lanes' sum and the epilogue, per tile of output channels.
    sch.reverse_compute_at(main, oc_o)
    _place_epilogue(sch, last_name, oc_o, 2, config)
    # Step 5. Parallel over output-channel tiles, vectorised lanes, unroll.
    prefix = _parallel_prefix(sch, [n, oc_o], config.parallel)
    if prefix:
        sch.parallel(sch.fuse(*prefix) if len(prefix) > 1 else prefix[0])
    sch.vectorize(rc_i)
    sch.decompose_reduction(rf, rc_o)
    if config.unroll:
        sch.annotate(rc_o, "pragma_auto_unroll_max_step", config.unroll)
        sch.annotate(rc_o, "pragma_unroll_explicit", 1)
