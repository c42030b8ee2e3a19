/* The level-sweep kernels of infocam_exp/metrics/_boxes_compiled.py in C.

   Each function here is the same algorithm as the numba kernel of the same name there (read the
   docstrings of that module for what they compute and why); the Python glue (_Work, _map_ious)
   is shared and calls one set or the other.  The C form exists because a C compiler builds it in
   a fraction of a second, where numba needs seconds on a fresh install.

   Exactness: IoUs and covers are float64 operations in the same order as the numba code and as
   boxes.box_iou; the file must be compiled without -ffast-math and with -ffp-contract=off (no
   fused multiply-add), so the results are bit-identical.

   Arrays are passed as pointers to C-contiguous numpy buffers; dtypes are given per argument.
   Pixel indices are int64 arithmetic on int32 storage, as in the numba code. */

#include <stdint.h>
#include <math.h>

#define NUM_LEVELS 256
#define STALE (-2.0)    /* a live region's cached IoU after its box grew */
#define UNSCORED (-3.0) /* a hole's cached IoU while only its box area is known */

static inline int64_t imin(int64_t a, int64_t b) { return a < b ? a : b; }
static inline int64_t imax(int64_t a, int64_t b) { return a > b ? a : b; }
static inline double dmin(double a, double b) { return a < b ? a : b; }
static inline double dmax(double a, double b) { return a > b ? a : b; }

static inline int64_t find(int32_t *parent, int64_t x) {
    while (parent[x] != x) { /* path halving */
        int64_t grand = parent[parent[x]];
        parent[x] = (int32_t)grand;
        x = grand;
    }
    return x;
}

/* Best IoU (+1 pixel convention, clamped) of box [a0, a1, a2, a3] over the valid ground truth
   (gt: ngt x 4 float64, gvalid: ngt bytes). */
double best_iou(double a0, double a1, double a2, double a3, const double *gt,
                const uint8_t *gvalid, int64_t ngt) {
    double best = -1.0;
    double area_a = (a2 - a0 + 1.0) * (a3 - a1 + 1.0);
    for (int64_t g = 0; g < ngt; g++) {
        if (!gvalid[g]) continue;
        const double *b = gt + 4 * g;
        double iw = dmin(a2, b[2]) - dmax(a0, b[0]) + 1.0;
        double ih = dmin(a3, b[3]) - dmax(a1, b[1]) + 1.0;
        if (iw < 0.0) iw = 0.0;
        if (ih < 0.0) ih = 0.0;
        double inter = iw * ih;
        double area_b = (b[2] - b[0] + 1.0) * (b[3] - b[1] + 1.0);
        double uni = area_a + area_b - inter;
        double iou = uni > 0.0 ? inter / uni : 0.0;
        if (iou > best) best = iou;
    }
    return best > 0.0 ? best : 0.0;
}

/* The largest share of a valid ground-truth box that box [a0, a1, a2, a3] covers. */
static double cover(double a0, double a1, double a2, double a3, const double *gt,
                    const uint8_t *gvalid, int64_t ngt) {
    double best = 0.0;
    for (int64_t g = 0; g < ngt; g++) {
        if (!gvalid[g]) continue;
        const double *b = gt + 4 * g;
        double iw = dmin(a2, b[2]) - dmax(a0, b[0]) + 1.0;
        double ih = dmin(a3, b[3]) - dmax(a1, b[1]) + 1.0;
        if (iw <= 0.0 || ih <= 0.0) continue;
        double area_b = (b[2] - b[0] + 1.0) * (b[3] - b[1] + 1.0);
        double share = area_b > 0.0 ? (iw * ih) / area_b : 1.0;
        if (share > best) best = share;
    }
    return best;
}

/* Priority flood from the border: filled[p], falling order and count per level, depressions;
   returns the number of depressions.  head (NUM_LEVELS int64), nxt (int32) and seen (uint8)
   are scratch. */
int64_t fill_holes(const uint8_t *val, int64_t stride, int64_t height, int64_t width,
                   uint8_t *filled, int32_t *order, int64_t *count, int32_t *depressions,
                   int64_t *head, int32_t *nxt, uint8_t *seen) {
    for (int64_t v = 0; v < NUM_LEVELS; v++) head[v] = -1;
    for (int64_t y = 0; y < height + 2; y++)
        for (int64_t x = 0; x < width + 2; x++)
            seen[y * stride + x] = (y == 0 || x == 0 || y == height + 1 || x == width + 1);
    for (int64_t y = 1; y < height + 1; y++)
        for (int64_t x = 1; x < width + 1; x++)
            if (y == 1 || x == 1 || y == height || x == width) {
                int64_t p = y * stride + x;
                seen[p] = 1;
                int64_t level = val[p];
                filled[p] = (uint8_t)level;
                nxt[p] = (int32_t)head[level];
                head[level] = p;
            }
    const int64_t n = height * width;
    const int64_t step[4] = {-stride, stride, -1, 1};
    int64_t done = 0, n_dep = 0;
    for (int64_t level = 0; level < NUM_LEVELS; level++) {
        while (head[level] >= 0) {
            int64_t p = head[level];
            head[level] = nxt[p];
            done++;
            order[n - done] = (int32_t)p;
            count[level]++;
            for (int j = 0; j < 4; j++) {
                int64_t q = p + step[j];
                if (seen[q]) continue;
                seen[q] = 1;
                int64_t w = val[q];
                if (w < level) {
                    filled[q] = (uint8_t)level;
                    depressions[n_dep++] = (int32_t)q;
                    nxt[q] = (int32_t)head[level];
                    head[level] = q;
                } else {
                    filled[q] = (uint8_t)w;
                    nxt[q] = (int32_t)head[w];
                    head[w] = q;
                }
            }
        }
    }
    return n_dep;
}

/* Counting sort of the map's pixels by falling value, raster order within a value. */
void sort_levels(const uint8_t *val, int64_t stride, int64_t height, int64_t width,
                 int32_t *order, int64_t *count, int64_t *start) {
    for (int64_t v = 0; v < NUM_LEVELS; v++) count[v] = 0;
    for (int64_t y = 1; y < height + 1; y++)
        for (int64_t x = 1; x < width + 1; x++) count[val[y * stride + x]]++;
    int64_t acc = 0;
    for (int64_t v = NUM_LEVELS - 1; v >= 0; v--) {
        start[v] = acc;
        acc += count[v];
    }
    for (int64_t y = 1; y < height + 1; y++)
        for (int64_t x = 1; x < width + 1; x++) {
            int64_t p = y * stride + x;
            order[start[val[p]]++] = (int32_t)p;
        }
}

static inline void merge(int32_t *parent, int32_t *box, int64_t lo, int64_t hi) {
    parent[hi] = (int32_t)lo;
    int32_t *a = box + 4 * lo, *b = box + 4 * hi;
    a[0] = (int32_t)imin(a[0], b[0]);
    a[1] = (int32_t)imin(a[1], b[1]);
    a[2] = (int32_t)imax(a[2], b[2]);
    a[3] = (int32_t)imax(a[3], b[3]);
}

static inline void new_root(int32_t *parent, int32_t *box, int64_t p, int64_t px, int64_t py) {
    parent[p] = (int32_t)p;
    int32_t *a = box + 4 * p;
    a[0] = (int32_t)px;
    a[1] = (int32_t)py;
    a[2] = (int32_t)px;
    a[3] = (int32_t)py;
}

static inline void take_root(int32_t *parent, int32_t *box, int32_t *slot, int32_t *alive,
                             int64_t root, int64_t p, int64_t px, int64_t py) {
    parent[root] = (int32_t)p;
    parent[p] = (int32_t)p;
    int32_t *a = box + 4 * p, *b = box + 4 * root;
    a[0] = (int32_t)imin(b[0], px);
    a[1] = (int32_t)imin(b[1], py);
    a[2] = (int32_t)imax(b[2], px);
    a[3] = (int32_t)imax(b[3], py);
    int64_t i = slot[root];
    alive[i] = (int32_t)p;
    slot[p] = (int32_t)i;
}

static inline int join(int32_t *parent, int32_t *box, int64_t root, int64_t p, int64_t px,
                       int64_t py) {
    parent[p] = (int32_t)root;
    int32_t *a = box + 4 * root;
    int grew = 0;
    if (px < a[0]) {
        a[0] = (int32_t)px;
        grew = 1;
    } else if (px > a[2]) {
        a[2] = (int32_t)px;
        grew = 1;
    }
    if (py > a[3]) {
        a[3] = (int32_t)py;
        grew = 1;
    }
    return grew;
}

static inline int64_t drop(int64_t hi, int32_t *slot, int32_t *alive, double *alive_iou,
                           int64_t n_alive) {
    int64_t i = slot[hi];
    n_alive--;
    int64_t last = alive[n_alive];
    alive[i] = (int32_t)last;
    alive_iou[3 * i] = alive_iou[3 * n_alive];
    alive_iou[3 * i + 1] = alive_iou[3 * n_alive + 1];
    alive_iou[3 * i + 2] = alive_iou[3 * n_alive + 2];
    slot[last] = (int32_t)i;
    return n_alive;
}

/* Falling sweep (8-connected regions); see _sweep_down.  Returns 1 when stopped at a hole.
   offs (256 x 4 int64): per neighbour mask, the offsets of the groups' first neighbours. */
int64_t sweep_down(const int32_t *order, const int64_t *count, uint8_t *entered,
                   const int64_t *offs, int64_t stride, int64_t height, int64_t width,
                   const uint8_t *needed, int64_t track_area, int64_t track_any,
                   int64_t stop_at_hole, const double *gt, const uint8_t *gvalid, int64_t ngt,
                   double empty_iou, const int32_t *ring, int32_t *parent, int32_t *box,
                   int32_t *area2, int32_t *slot, int32_t *alive, double *alive_iou,
                   double *lvl_largest, int64_t *lvl_box, double *lvl_any) {
    const int64_t size = (height + 2) * stride;
    for (int64_t i = 0; i < size; i++) entered[i] = 0;
    const int64_t xmax = width - 1, ymax = height - 1;
    int64_t n_alive = 0, best_root = -1, best_area = -1, euler4 = 0;
    int rescan = 0, changed = 0;
    double last_largest = empty_iou, last_any = empty_iou;
    int64_t b0 = 0, b1 = 0, b2 = 0, b3 = 0;
    int64_t k = 0;
    for (int64_t v = NUM_LEVELS - 1; v > 0; v--) {
        int64_t end = k + count[v];
        if (end > k) changed = 1;
        for (; k < end; k++) {
            int64_t p = order[k];
            int64_t mask = (int64_t)entered[p - stride - 1] | ((int64_t)entered[p - stride] << 1) |
                           ((int64_t)entered[p - stride + 1] << 2) |
                           ((int64_t)entered[p + 1] << 3) |
                           ((int64_t)entered[p + stride + 1] << 4) |
                           ((int64_t)entered[p + stride] << 5) |
                           ((int64_t)entered[p + stride - 1] << 6) |
                           ((int64_t)entered[p - 1] << 7);
            entered[p] = 1;
            int64_t py = p / stride - 1;
            int64_t px = p - (py + 1) * stride - 1;
            const int32_t *rg = ring + 7 * mask;
            int64_t runs = rg[0];
            int64_t root;
            int grown = 1;
            if (runs == 0) {
                root = p;
                new_root(parent, box, p, px, py);
                area2[p] = 0;
                slot[p] = (int32_t)n_alive;
                alive[n_alive++] = (int32_t)p;
            } else {
                const int64_t *ro = offs + 4 * mask; /* each group's first neighbour */
                root = find(parent, p + ro[0]);
                for (int64_t j = 1; j < runs; j++) {
                    int64_t rb = find(parent, p + ro[j]);
                    if (rb == root) continue;
                    int64_t lo = imin(root, rb), hi = imax(root, rb);
                    merge(parent, box, lo, hi);
                    area2[lo] += area2[hi];
                    n_alive = drop(hi, slot, alive, alive_iou, n_alive);
                    root = lo;
                }
                if (p < root) {
                    take_root(parent, box, slot, alive, root, p, px, py);
                    area2[p] = area2[root];
                    root = p;
                } else {
                    int extended = join(parent, box, root, p, px, py);
                    grown = extended || runs > 1;
                }
            }
            if (grown) alive_iou[3 * (int64_t)slot[root]] = STALE;
            euler4 += rg[6];
            if (track_area) {
                area2[root] += rg[5];
                int64_t a = area2[root];
                if (best_root >= 0 && parent[best_root] != best_root) {
                    if (a == best_area) rescan = 1;
                    best_root = root;
                    best_area = a;
                } else if (a > best_area || (a == best_area && root > best_root)) {
                    best_root = root;
                    best_area = a;
                }
            }
        }
        int64_t t = v - 1;
        if (!needed[t]) continue;
        if (stop_at_hole && 4 * n_alive > euler4) return 1;
        if (changed) {
            if (rescan) {
                best_area = -1;
                best_root = -1;
                for (int64_t i = 0; i < n_alive; i++) {
                    int64_t r = alive[i];
                    if (area2[r] > best_area || (area2[r] == best_area && r > best_root)) {
                        best_area = area2[r];
                        best_root = r;
                    }
                }
                rescan = 0;
            }
            if (track_any && n_alive) {
                double best_any = -1.0;
                for (int64_t i = 0; i < n_alive; i++) {
                    if (alive_iou[3 * i] == STALE) {
                        const int32_t *bx = box + 4 * (int64_t)alive[i];
                        alive_iou[3 * i] = best_iou(
                            (double)bx[0], (double)bx[1], (double)imin(bx[2] + 1, xmax),
                            (double)imin(bx[3] + 1, ymax), gt, gvalid, ngt);
                    }
                    if (alive_iou[3 * i] > best_any) best_any = alive_iou[3 * i];
                }
                last_any = best_any;
            }
            if (track_area && best_root >= 0) {
                const int32_t *bx = box + 4 * best_root;
                b0 = bx[0];
                b1 = bx[1];
                b2 = imin(bx[2] + 1, xmax);
                b3 = imin(bx[3] + 1, ymax);
                last_largest =
                    best_iou((double)b0, (double)b1, (double)b2, (double)b3, gt, gvalid, ngt);
            }
            changed = 0;
        }
        if (track_area) {
            lvl_largest[t] = last_largest;
            lvl_box[4 * t] = b0;
            lvl_box[4 * t + 1] = b1;
            lvl_box[4 * t + 2] = b2;
            lvl_box[4 * t + 3] = b3;
        }
        if (track_any) lvl_any[t] = last_any;
    }
    return 0;
}

/* Rising sweep over the pixels that are ever in a hole (4-connected); see _sweep_holes.
   count (NUM_LEVELS + 1 int64), order and entered are scratch. */
void sweep_holes(const uint8_t *val, const uint8_t *filled, const int32_t *depressions,
                 int64_t n_dep, int64_t stride, int64_t height, int64_t width,
                 const uint8_t *needed, const double *gt, const uint8_t *gvalid, int64_t ngt,
                 int32_t *parent, int32_t *box, int32_t *slot, int32_t *alive, double *alive_iou,
                 const double *floor_, double *lvl_hole, double *lvl_cover, int64_t *count,
                 int32_t *order, uint8_t *entered) {
    for (int64_t v = 0; v < NUM_LEVELS + 1; v++) count[v] = 0;
    for (int64_t i = 0; i < n_dep; i++) count[val[depressions[i]] + 1]++;
    for (int64_t v = 0; v < NUM_LEVELS; v++) count[v + 1] += count[v];
    for (int64_t i = 0; i < n_dep; i++) {
        int64_t p = depressions[i];
        order[count[val[p]]++] = (int32_t)p;
    }
    const int64_t size = (height + 2) * stride;
    for (int64_t i = 0; i < size; i++) entered[i] = 0;
    double min_area = INFINITY;
    for (int64_t g = 0; g < ngt; g++)
        if (gvalid[g]) {
            const double *b = gt + 4 * g;
            min_area = dmin(min_area, (b[2] - b[0] + 1.0) * (b[3] - b[1] + 1.0));
        }
    if (!(min_area > 0.0)) min_area = 0.0;
    const int64_t xmax = width - 1, ymax = height - 1;
    const int64_t step[4] = {-stride, stride, -1, 1};
    int64_t n_alive = 0, k = 0;
    for (int64_t v = 0; v < NUM_LEVELS - 1; v++) {
        while (k < n_dep && val[order[k]] == v) {
            int64_t p = order[k++];
            entered[p] = 1;
            int64_t py = p / stride - 1;
            int64_t px = p - (py + 1) * stride - 1;
            int64_t root = -1;
            int grown = 0;
            for (int j = 0; j < 4; j++) {
                int64_t q = p + step[j];
                if (!entered[q]) continue;
                int64_t rb = find(parent, q);
                if (root < 0) {
                    root = rb;
                    continue;
                }
                if (rb == root) continue;
                int64_t lo = imin(root, rb), hi = imax(root, rb);
                merge(parent, box, lo, hi);
                n_alive = drop(hi, slot, alive, alive_iou, n_alive);
                root = lo;
                grown = 1;
            }
            if (root < 0) {
                root = p;
                new_root(parent, box, p, px, py);
                slot[p] = (int32_t)n_alive;
                alive[n_alive] = (int32_t)p;
                alive_iou[3 * n_alive + 2] = (double)filled[p];
                n_alive++;
                grown = 1;
            } else if (p < root) {
                take_root(parent, box, slot, alive, root, p, px, py);
                root = p;
                grown = 1;
            } else {
                int extended = join(parent, box, root, p, px, py);
                grown = grown || extended;
            }
            if (grown) alive_iou[3 * (int64_t)slot[root]] = STALE;
        }
        if (!needed[v] || n_alive == 0) continue;
        double best_hole = -1.0, best_cover = -1.0;
        double smallest = floor_[v] * min_area * 0.999999;
        int64_t i = 0;
        while (i < n_alive) {
            double *ai = alive_iou + 3 * i;
            if (ai[2] <= (double)v) {
                n_alive = drop(alive[i], slot, alive, alive_iou, n_alive);
                continue;
            }
            if (ai[0] == STALE) {
                const int32_t *bx = box + 4 * (int64_t)alive[i];
                ai[0] = UNSCORED;
                ai[1] = (double)(imin(bx[2] + 2, xmax) - bx[0] + 2) *
                        (double)(imin(bx[3] + 2, ymax) - bx[1] + 2);
            }
            if (ai[0] == UNSCORED) {
                if (ai[1] < smallest) {
                    i++;
                    continue;
                }
                const int32_t *bx = box + 4 * (int64_t)alive[i];
                double e0 = (double)(bx[0] - 1), e1 = (double)(bx[1] - 1);
                double e2 = (double)imin(bx[2] + 2, xmax), e3 = (double)imin(bx[3] + 2, ymax);
                ai[0] = best_iou(e0, e1, e2, e3, gt, gvalid, ngt);
                ai[1] = cover(e0, e1, e2, e3, gt, gvalid, ngt);
            }
            if (ai[0] > best_hole) best_hole = ai[0];
            if (ai[1] > best_cover) best_cover = ai[1];
            i++;
        }
        lvl_hole[v] = best_hole;
        lvl_cover[v] = best_cover;
    }
}
