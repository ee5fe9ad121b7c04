"""Applying a `ScheduleConfig` to a fused conv2d / dense TensorIR function (`tvm.s_tir.Schedule`).

The functions come from Relax's LegalizeOps + FuseOps + FuseTIR: a padding block (``pad_temp``), the
main reduction block (``conv2d_nchw``, ``group_conv2d_nchw`` or ``matmul``, loops n, oc, oh, ow, rc,
ry, rx / i, j, k) and elementwise epilogue blocks (bias add, clip, residual add). The schedule:

1. inline the padding into the conv's reads, or leave it as its own (parallel) stage;
2. inline the epilogue chain into its last block, and fuse that block into the conv's innermost outer
   tile (or leave it as its own parallel, vectorised loop nest);
3. split the output channel, row, column and reduction axes by the config's tiles and order the outer
   tiles as the config says, the reduction loops next, the inner tiles last (the vectorised one innermost);
4. parallelise, vectorise (then hoist the reduction's initialisation), and unroll.

A config that does not fit the function's shape raises `ConfigDoesNotFit` with the reason, before any
scheduling; the resulting schedule's trace is what the tuning database stores.
"""

from __future__ import annotations

from typing import Any

from schedules.explicit_space import ConfigDoesNotFit, LayerShape, check_fits
from schedules.records import ScheduleConfig

__all__ = ["apply_config", "main_block_kind", "layer_shape_of", "MAIN_BLOCKS"]

MAIN_BLOCKS = {"conv2d_nchw": "conv2d", "group_conv2d_nchw": "group_conv2d", "depthwise_conv2d_nchw": "group_conv2d",
               "matmul": "dense", "T_matmul_NT": "dense", "NT_matmul": "dense"}


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
        if vec is not None:
            inner = [l for l in inner if not l.same_as(vec)] + [vec]
        sch.reorder(n, *outer, rc_o, ry, rx, rc_i, *inner)
        spatial_outer, red_outer = [n, *outer], rc_o
    # Step 4. Epilogue placement.
    if epilogue:
        last = sch.get_sblock(epilogue[-1])
        if config.fuse_epilogue:
            sch.reverse_compute_at(last, outer[-1])
            ep_loops = sch.get_loops(last)[len(spatial_outer):]
        else:
            ep_loops = sch.get_loops(last)
            sch.parallel(sch.fuse(*ep_loops[:2]))
            ep_loops = []
        if ep_loops and config.vectorize != "none":
            sch.vectorize(ep_loops[-1])
    for name in pad_stages:
        pad_loops = sch.get_loops(sch.get_sblock(name))
        sch.parallel(sch.fuse(*pad_loops[:2]))
    # Step 5. Parallel outer loops (fused into one parallel loop), reduction init, vectorise, unroll.
    if config.parallel != "none":
        count = {"outer": 2, "outer2": 3}[config.parallel]
        sch.parallel(sch.fuse(*spatial_outer[:count]))
    if vec is not None:
        # Vectorise while the block still owns its init (a reduction block), then hoist the init out
        # of the reduction loops: its copy of the vector loop stays vectorised.
        sch.vectorize(vec)
        sch.decompose_reduction(main, red_outer)
    if config.unroll:
        sch.annotate(red_outer, "pragma_auto_unroll_max_step", config.unroll)
        sch.annotate(red_outer, "pragma_unroll_explicit", 1)
    return sch
