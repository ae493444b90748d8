// A two-level uniform grid over the boxes of one greedy NMS-family loop (CPU only).
//
// Each round of soft-NMS, KL-NMS or IoU-guided NMS changes only the boxes that overlap the
// selected one (IoU > t >= 0 needs a positive intersection). The grid buckets the boxes by centre
// into cells of about `per_cell` boxes, and the cells into tiles of 4 x 4 cells. Cells and tiles
// keep the bounding box of their live boxes and their best live score (-inf: none live). A round
// tests the tiles' bounds against the selection, then the cells' bounds inside the tiles that
// pass; only the boxes of the cells that pass get an IoU (a branch-free loop the compiler
// vectorises), and the caller then updates the short list of live boxes above its threshold. The
// next selection descends through the tiles and cells holding the best score. Boxes that do not
// overlap the selection get IoU 0 exactly from box_iou, so skipping them changes no result.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "common/box_utils.h"

namespace d2_boxunc {

// Per group of boxes (a cell, or a tile of cells): bounds and best score of its live boxes.
template <typename T>
struct GroupStats {
  static constexpr T kNegInf = -std::numeric_limits<T>::infinity();
  std::vector<T> x1, y1, x2, y2, best;

  void resize(int64_t n) {
    for (auto* v : {&x1, &y1, &x2, &y2, &best}) v->resize(n);
  }

  bool empty(int64_t g) const { return best[g] == kNegInf; }

  // A box overlapping (qx1, qy1, qx2, qy2) has x1 < qx2 and x2 > qx1 (likewise in y), so the
  // bounds of its group pass the same strict tests; a group without live boxes never passes.
  bool may_overlap(int64_t g, T qx1, T qy1, T qx2, T qy2) const {
    return (x1[g] < qx2) & (x2[g] > qx1) & (y1[g] < qy2) & (y2[g] > qy1);
  }
};

template <typename T>
struct BoxGrid {
  static constexpr T kNegInf = -std::numeric_limits<T>::infinity();
  static constexpr T kInf = std::numeric_limits<T>::infinity();
  static constexpr int64_t kTile = 4;  // cells per tile side

  // per slot: the boxes regrouped cell by cell
  std::vector<T> x1, y1, x2, y2, area;
  std::vector<T> s;  // current score of live boxes (finite), -inf marks a dead box
  std::vector<int64_t> id;  // the caller's id of each slot
  std::vector<int64_t> cell;  // the cell of each slot
  std::vector<int64_t> slot;  // slot[k]: the slot of ids[k]
  // per non-empty cell: slots [cell_begin[c], cell_begin[c + 1]); per tile: its cells
  std::vector<int64_t> cell_begin, cell_tile, tile_begin;
  GroupStats<T> cells, tiles;

  // Boxes `boxes[4 * ids[k]]` with scores `scores[ids[k]]` (scores may be null: all 0).
  BoxGrid(
      const T* boxes, const T* scores, const std::vector<int64_t>& ids, int64_t per_cell = 16) {
    const int64_t n = static_cast<int64_t>(ids.size());
    // Cell geometry in double: centres of float/double boxes, guarded against inf/NaN extents.
    double lx = kInf, ly = kInf, hx = kNegInf, hy = kNegInf;
    std::vector<double> cx(n), cy(n);
    for (int64_t k = 0; k < n; ++k) {
      const T* b = boxes + 4 * ids[k];
      cx[k] = 0.5 * double(b[0]) + 0.5 * double(b[2]);
      cy[k] = 0.5 * double(b[1]) + 0.5 * double(b[3]);
      lx = std::min(lx, cx[k]);
      hx = std::max(hx, cx[k]);
      ly = std::min(ly, cy[k]);
      hy = std::max(hy, cy[k]);
    }
    const int64_t n_cells = std::max<int64_t>(1, n / std::max<int64_t>(per_cell, 1));
    const double w = hx - lx, h = hy - ly;
    const double aspect = (w > 0 && h > 0 && std::isfinite(w / h)) ? w / h : 1.0;
    const int64_t gx = std::clamp<int64_t>(std::llround(std::sqrt(n_cells * aspect)), 1, n_cells);
    const int64_t gy = std::max<int64_t>(1, (n_cells + gx - 1) / gx);
    auto bin = [](double v, double lo, double extent, int64_t g) -> int64_t {
      const double t = (v - lo) / extent;
      if (!(t > 0)) return 0;  // also NaN (zero or infinite extent)
      return std::min<int64_t>(static_cast<int64_t>(std::min(t * g, double(g))), g - 1);
    };
    // Cell keys in tile-major order, so that the cells of a tile are consecutive.
    const int64_t tiles_x = (gx + kTile - 1) / kTile, tiles_y = (gy + kTile - 1) / kTile;
    const int64_t n_keys = tiles_x * tiles_y * kTile * kTile;
    std::vector<int64_t> key(n), count(n_keys + 1, 0);
    for (int64_t k = 0; k < n; ++k) {
      const int64_t ix = bin(cx[k], lx, w, gx), iy = bin(cy[k], ly, h, gy);
      const int64_t tile = (iy / kTile) * tiles_x + ix / kTile;
      key[k] = tile * kTile * kTile + (iy % kTile) * kTile + ix % kTile;
      ++count[key[k] + 1];
    }
    for (int64_t c = 0; c < n_keys; ++c) count[c + 1] += count[c];
    std::vector<int64_t> order(n);
    for (int64_t k = 0; k < n; ++k) order[count[key[k]]++] = k;  // stable counting sort

    x1.resize(n), y1.resize(n), x2.resize(n), y2.resize(n), area.resize(n), s.resize(n);
    id.resize(n), cell.resize(n), slot.resize(n);
    for (int64_t q = 0; q < n; ++q) {
      const int64_t k = order[q];
      const T* b = boxes + 4 * ids[k];
      x1[q] = b[0], y1[q] = b[1], x2[q] = b[2], y2[q] = b[3];
      area[q] = box_area(b[0], b[1], b[2], b[3]);
      s[q] = scores != nullptr ? scores[ids[k]] : T(0);
      id[q] = ids[k];
      slot[k] = q;
      const bool new_cell = q == 0 || key[k] != key[order[q - 1]];
      if (new_cell && (q == 0 || key[k] / (kTile * kTile) != key[order[q - 1]] / (kTile * kTile))) {
        tile_begin.push_back(static_cast<int64_t>(cell_begin.size()));
      }
      if (new_cell) {
        cell_begin.push_back(q);
        cell_tile.push_back(static_cast<int64_t>(tile_begin.size()) - 1);
      }
      cell[q] = static_cast<int64_t>(cell_begin.size()) - 1;
    }
    cell_begin.push_back(n);
    tile_begin.push_back(static_cast<int64_t>(cell_begin.size()) - 1);
    cells.resize(num_cells());
    tiles.resize(num_tiles());
    tile_dirty_.assign(num_tiles(), 0);
    for (int64_t c = 0; c < num_cells(); ++c) refresh(c);
    sync_tiles();
  }

  int64_t num_slots() const { return static_cast<int64_t>(id.size()); }
  int64_t num_cells() const { return static_cast<int64_t>(cell_tile.size()); }
  int64_t num_tiles() const { return static_cast<int64_t>(tile_begin.size()) - 1; }

  bool alive(int64_t q) const { return s[q] != kNegInf; }

  void kill(int64_t q) { s[q] = kNegInf; }

  // Recomputes the best score of cell c after its scores changed and, when boxes died (or with
  // `bounds`), the bounds of its live boxes.
  void refresh(int64_t c, bool bounds = true) {
    const int64_t lo = cell_begin[c], hi = cell_begin[c + 1];
    T b[4] = {kNegInf, kNegInf, kNegInf, kNegInf};  // four lanes: the compare chains overlap
    int64_t q = lo;
    for (; q + 4 <= hi; q += 4) {
      for (int k = 0; k < 4; ++k) b[k] = s[q + k] > b[k] ? s[q + k] : b[k];
    }
    for (; q < hi; ++q) b[0] = s[q] > b[0] ? s[q] : b[0];
    cells.best[c] = box_max(box_max(b[0], b[1]), box_max(b[2], b[3]));
    if (bounds) {
      T lx = kInf, ly = kInf, hx = kNegInf, hy = kNegInf;
      for (q = lo; q < hi; ++q) {
        if (s[q] == kNegInf) continue;
        lx = box_min(lx, x1[q]), ly = box_min(ly, y1[q]);
        hx = box_max(hx, x2[q]), hy = box_max(hy, y2[q]);
      }
      cells.x1[c] = lx, cells.y1[c] = ly, cells.x2[c] = hx, cells.y2[c] = hy;
    }
    const int64_t t = cell_tile[c];
    if (!tile_dirty_[t]) {
      tile_dirty_[t] = 1;
      dirty_.push_back(t);
    }
  }

  // IoU of the query box with every slot of the cells `near` (from cells_near), written to o[q].
  // The live slots whose IoU exceeds t are written to hits (room for num_slots()), in slot order
  // and so grouped by cell; returns their number.
  int64_t overlaps(
      T qx1, T qy1, T qx2, T qy2, T qarea, const std::vector<int64_t>& near, T t, T* o,
      int64_t* hits) const {
    int64_t k = 0;
    for (int64_t c : near) {
      const int64_t lo = cell_begin[c], hi = cell_begin[c + 1];
      for (int64_t q = lo; q < hi; ++q) {
        o[q] = box_iou(qx1, qy1, qx2, qy2, qarea, x1[q], y1[q], x2[q], y2[q], area[q]);
      }
      for (int64_t q = lo; q < hi; ++q) {  // branch-free compaction
        hits[k] = q;
        k += (o[q] > t) & (s[q] != kNegInf);
      }
    }
    return k;
  }

  // overlaps() for the box of slot m (a selection): the live slots whose IoU with it exceeds t,
  // looking at every cell with a live box when t < 0 (a negative threshold reaches disjoint
  // boxes). `near` is scratch for the cells.
  int64_t overlaps_of(int64_t m, T t, std::vector<int64_t>& near, T* o, int64_t* hits) {
    cells_near(x1[m], y1[m], x2[m], y2[m], t < T(0), near);
    return overlaps(x1[m], y1[m], x2[m], y2[m], area[m], near, t, o, hits);
  }

  // Refreshes the cells of hits[0..k) (grouped by cell, as overlaps() returns them) after the
  // caller lowered their scores or killed some of them.
  void refresh_cells_of(const int64_t* hits, int64_t k) {
    for (int64_t h = 0; h < k;) {
      const int64_t c = cell[hits[h]];
      bool died = false;
      for (; h < k && cell[hits[h]] == c; ++h) died |= s[hits[h]] == kNegInf;
      refresh(c, died);
    }
  }

  // Kills slot q (the selected box) and refreshes its cell.
  void take(int64_t q) {
    kill(q);
    refresh(cell[q]);
  }

  // Cells with a live box that may overlap (qx1, qy1, qx2, qy2) - every cell with a live box when
  // `all` (negative thresholds reach disjoint boxes too).
  void cells_near(T qx1, T qy1, T qx2, T qy2, bool all, std::vector<int64_t>& out) {
    sync_tiles();
    out.clear();
    for (int64_t t = 0; t < num_tiles(); ++t) {
      if (all ? tiles.empty(t) : !tiles.may_overlap(t, qx1, qy1, qx2, qy2)) continue;
      for (int64_t c = tile_begin[t]; c < tile_begin[t + 1]; ++c) {
        if (all ? !cells.empty(c) : cells.may_overlap(c, qx1, qy1, qx2, qy2)) out.push_back(c);
      }
    }
  }

  // The live slot with the highest score, ties to the smallest id; -1 when none is live.
  int64_t argmax() {
    sync_tiles();
    const int64_t nt = num_tiles();
    T top = kNegInf;
    for (int64_t t = 0; t < nt; ++t) top = tiles.best[t] > top ? tiles.best[t] : top;
    int64_t m = -1;
    if (top == kNegInf) return m;
    for (int64_t t = 0; t < nt; ++t) {
      if (tiles.best[t] != top) continue;
      for (int64_t c = tile_begin[t]; c < tile_begin[t + 1]; ++c) {
        if (cells.best[c] != top) continue;
        for (int64_t q = cell_begin[c]; q < cell_begin[c + 1]; ++q) {
          if (s[q] == top && (m < 0 || id[q] < id[m])) m = q;
        }
      }
    }
    return m;
  }

 private:
  std::vector<uint8_t> tile_dirty_;
  std::vector<int64_t> dirty_;

  void sync_tiles() {
    for (int64_t t : dirty_) {
      T lx = kInf, ly = kInf, hx = kNegInf, hy = kNegInf, best = kNegInf;
      for (int64_t c = tile_begin[t]; c < tile_begin[t + 1]; ++c) {  // empty cells: +-inf bounds
        lx = box_min(lx, cells.x1[c]), ly = box_min(ly, cells.y1[c]);
        hx = box_max(hx, cells.x2[c]), hy = box_max(hy, cells.y2[c]);
        best = box_max(best, cells.best[c]);
      }
      tiles.x1[t] = lx, tiles.y1[t] = ly, tiles.x2[t] = hx, tiles.y2[t] = hy, tiles.best[t] = best;
      tile_dirty_[t] = 0;
    }
    dirty_.clear();
  }
};

}  // namespace d2_boxunc
