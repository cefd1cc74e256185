/* test-suite/unit/check_shape.c - every shape rule of ir/shape.c, success and
 * failure, as a table: operand types and attributes in, the result type or
 * the exact diagnostic (id + message) out. The message text is the user
 * interface, so it is compared in full. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ir/ir.h"

/* ---- helpers: types and attributes from text ------------------------------------ */

/* "f32[8,64]" -> dtype + shape; "f32[]" is a scalar. */
static void parse_type(const char *s, CkDType *dt, CkShape *sh) {
  char name[8];
  size_t k = 0;
  while (s[k] && s[k] != '[' && k < sizeof name - 1) {
    name[k] = s[k];
    k++;
  }
  name[k] = 0;
  ck_assert_msg(ck_dtype_from_name(name, dt), "bad dtype in %s", s);
  memset(sh, 0, sizeof *sh);
  const char *p = s + k;
  ck_assert_msg(*p == '[', "bad type %s", s);
  p++;
  while (*p && *p != ']') {
    char *end;
    sh->dims[sh->rank++] = strtoll(p, &end, 10);
    p = *end == ',' ? end + 1 : end;
  }
}

typedef struct AttrSet {
  IrAttr a[6];
  int64_t ints[6][CK_MAX_RANK];
  char keys[6][24];
  char strs[6][24];
  int n;
} AttrSet;

/* "transpose_b=1 perm=[0,2,1] to=i32 eps=1e-5": ints, [int lists],
 * floats (with '.' or 'e'), other words are strings. */
static void parse_attrs(const char *s, AttrSet *as) {
  memset(as, 0, sizeof *as);
  while (s && *s) {
    while (*s == ' ') s++;
    if (!*s) break;
    int i = as->n++;
    const char *eq = strchr(s, '=');
    ck_assert(eq != NULL);
    memcpy(as->keys[i], s, (size_t)(eq - s));
    const char *v = eq + 1;
    const char *end = strchr(v, ' ');
    size_t len = end ? (size_t)(end - v) : strlen(v);
    char val[64] = {0};
    memcpy(val, v, len);
    if (val[0] == '[') {
      int n = 0;
      char *p = val + 1;
      while (*p && *p != ']') {
        as->ints[i][n++] = strtoll(p, &p, 10);
        if (*p == ',') p++;
      }
      as->a[i] = ir_attr_ints(as->keys[i], as->ints[i], n);
    } else if ((val[0] == '-' || (val[0] >= '0' && val[0] <= '9')) && !strpbrk(val, ".e")) {
      as->a[i] = ir_attr_int(as->keys[i], strtoll(val, NULL, 10));
    } else if (val[0] == '-' || (val[0] >= '0' && val[0] <= '9')) {
      as->a[i] = ir_attr_float(as->keys[i], strtod(val, NULL));
    } else {
      memcpy(as->strs[i], val, len < 23 ? len : 23);
      as->a[i] = ir_attr_str(as->keys[i], as->strs[i]);
    }
    s = v + len;
  }
}

/* ---- the table ------------------------------------------------------------------------ */

typedef struct ShapeCase {
  const char *op;
  const char *in[3];
  const char *attrs;
  const char *want; /* "f32[8,64]" or "E0315 message" */
} ShapeCase;

static const ShapeCase cases[] = {
    /* broadcasting arithmetic */
    {"add", {"f32[8,64,128]", "f32[128]"}, "", "f32[8,64,128]"},
    {"add", {"f32[8,1,128]", "f32[64,1]"}, "", "f32[8,64,128]"},
    {"mul", {"f32[]", "f32[3]"}, "", "f32[3]"},
    {"div", {"f64[2,1]", "f64[1,5]"}, "", "f64[2,5]"},
    {"add", {"f32[8,64]", "f32[32]"}, "", "E0311 add: shapes do not broadcast: f32[8,64] + f32[32] (axis -1: 64 vs 32)"},
    {"mul", {"f32[2,3]", "f32[4,3]"}, "", "E0311 mul: shapes do not broadcast: f32[2,3] * f32[4,3] (axis -2: 2 vs 4)"},
    {"add", {"f32[4]", "i32[4]"}, "", "E0310 add: dtypes differ: f32[4] + i32[4]"},
    {"maximum", {"f32[4]", "i32[4]"}, "", "E0310 maximum: dtypes differ: f32[4], i32[4]"},
    {"sub", {"bool[2]", "bool[2]"}, "", "E0331 sub: arithmetic on bool: bool[2] - bool[2]"},
    /* unary */
    {"neg", {"i32[3]"}, "", "i32[3]"},
    {"abs", {"bool[3]"}, "", "E0331 abs: arithmetic on bool: bool[3]"},
    {"exp", {"f32[2,2]"}, "", "f32[2,2]"},
    {"exp", {"i32[3]"}, "", "E0312 exp: requires a float dtype, got i32[3]"},
    {"gelu", {"f32[2]"}, "approximate=tanh", "f32[2]"},
    {"gelu", {"f32[2]"}, "approximate=fast", "E0332 gelu: approximate must be \"none\" or \"tanh\", got \"fast\""},
    /* cast */
    {"cast", {"f32[2,3]"}, "to=i32", "i32[2,3]"},
    {"cast", {"f32[2,3]"}, "to=f16", "E0332 cast: unknown dtype \"f16\" (expected f32, f64, i32, u8 or bool)"},
    /* compare */
    {"lt", {"f32[4,1]", "f32[3]"}, "", "bool[4,3]"},
    {"eq", {"i32[2]", "f32[2]"}, "", "E0310 eq: dtypes differ: i32[2] == f32[2]"},
    {"gt", {"f32[2]", "f32[3]"}, "", "E0311 gt: shapes do not broadcast: f32[2] > f32[3] (axis -1: 2 vs 3)"},
    /* where */
    {"where", {"bool[4,1]", "f32[3]", "f32[1]"}, "", "f32[4,3]"},
    {"where", {"f32[4]", "f32[4]", "f32[4]"}, "", "E0313 where: condition must be bool, got f32[4]"},
    {"where", {"bool[4]", "f32[4]", "i32[4]"}, "", "E0310 where: dtypes differ: f32[4], i32[4]"},
    {"where", {"bool[4]", "f32[3]", "f32[4]"}, "", "E0311 where: shapes do not broadcast: bool[4], f32[3], f32[4] (axis -1: 4 vs 3)"},
    /* matmul */
    {"matmul", {"f32[8,64,128]", "f32[128,256]"}, "", "f32[8,64,256]"},
    {"matmul", {"f32[8,64,128]", "f32[256,128]"}, "", "E0315 matmul: inner dimensions differ: f32[8,64,128] @ f32[256,128] (128 vs 256)"},
    {"matmul", {"f32[8,64,128]", "f32[256,128]"}, "transpose_b=1", "f32[8,64,256]"},
    {"matmul", {"f32[3,2]", "f32[3,4]"}, "transpose_a=1", "f32[2,4]"},
    {"matmul", {"f32[3,2]", "f32[2,4]"}, "transpose_a=1", "E0315 matmul: inner dimensions differ: f32[3,2] @ f32[2,4] with transpose_a (3 vs 2)"},
    {"matmul", {"f32[2,1,3,4]", "f32[5,4,6]"}, "", "f32[2,5,3,6]"},
    {"matmul", {"f32[2,3,4]", "f32[5,4,6]"}, "", "E0316 matmul: batch dimensions do not broadcast: f32[2,3,4] @ f32[5,4,6] (axis -3: 2 vs 5)"},
    {"matmul", {"f32[4]", "f32[4,5]"}, "", "E0314 matmul: operands need rank >= 2 (reshape vectors to matrices): f32[4] @ f32[4,5]"},
    {"matmul", {"f32[2,2]", "f64[2,2]"}, "", "E0310 matmul: dtypes differ: f32[2,2] @ f64[2,2]"},
    /* permute */
    {"permute", {"f32[2,3,4]"}, "perm=[2,0,1]", "f32[4,2,3]"},
    {"permute", {"f32[2,3,4]"}, "perm=[0,0,1]", "E0317 permute: (0,0,1) is not a permutation of 0..2 for f32[2,3,4]"},
    {"permute", {"f32[2,3,4]"}, "perm=[1,0]", "E0317 permute: (1,0) is not a permutation of 0..2 for f32[2,3,4]"},
    /* reshape */
    {"reshape", {"f32[8,64]"}, "shape=[512]", "f32[512]"},
    {"reshape", {"f32[8,64]"}, "shape=[4,-1]", "f32[4,128]"},
    {"reshape", {"f32[8,64]"}, "shape=[4,100]", "E0318 reshape: element counts differ: f32[8,64] (512) to f32[4,100] (400)"},
    {"reshape", {"f32[8,64]"}, "shape=[-1,-1]", "E0318 reshape: more than one -1 in the target shape of f32[8,64]"},
    {"reshape", {"f32[8,64]"}, "shape=[7,-1]", "E0318 reshape: cannot infer -1: 512 elements of f32[8,64] are not a multiple of 7"},
    /* broadcast_to */
    {"broadcast", {"f32[3,1]"}, "shape=[2,3,4]", "f32[2,3,4]"},
    {"broadcast", {"f32[3,4]"}, "shape=[3,5]", "E0319 broadcast: cannot broadcast f32[3,4] to f32[3,5] (axis -1: 4 vs 5)"},
    {"broadcast", {"f32[2,3]"}, "shape=[3]", "E0319 broadcast: cannot broadcast f32[2,3] to the lower rank f32[3]"},
    {"broadcast", {"f32[1]"}, "shape=[4294967296,4294967296]", "E0330 broadcast: the result f32[4294967296,4294967296] has more elements than fit in 64 bits"},
    /* slice */
    {"slice", {"f32[4,8]"}, "axis=1 start=2 end=8 step=3", "f32[4,2]"},
    {"slice", {"f32[4,8]"}, "axis=-1 start=0 end=4", "f32[4,4]"},
    {"slice", {"f32[4,8]"}, "axis=1 start=2 end=9", "E0321 slice: range 2:9 is outside axis 1 of f32[4,8] (size 8)"},
    {"slice", {"f32[4,8]"}, "axis=0 start=3 end=3", "E0321 slice: range 3:3 is empty on axis 0 of f32[4,8] (size 4)"},
    {"slice", {"f32[4,8]"}, "axis=0 start=0 end=2 step=0", "E0321 slice: step must be positive, got 0"},
    {"slice", {"f32[4,8]"}, "axis=2 start=0 end=1", "E0320 slice: axis 2 is out of range for f32[4,8] (rank 2)"},
    /* concat */
    {"concat", {"f32[2,3]", "f32[2,5]"}, "axis=1", "f32[2,8]"},
    {"concat", {"f32[2,3]", "f32[2,5]", "f32[2,1]"}, "axis=-1", "f32[2,9]"},
    {"concat", {"f32[2,3]", "f32[3,3]"}, "axis=1", "E0322 concat: input 1 is f32[3,3], input 0 is f32[2,3]: axis 0 differs (3 vs 2)"},
    {"concat", {"f32[2,3]", "i32[2,3]"}, "axis=0", "E0310 concat: dtypes differ: input 1 is i32[2,3], input 0 is f32[2,3]"},
    {"concat", {"f32[2,3]", "f32[2,3,1]"}, "axis=0", "E0322 concat: ranks differ: input 1 is f32[2,3,1], input 0 is f32[2,3]"},
    /* reductions */
    {"sum", {"f32[2,3,4]"}, "axes=[1]", "f32[2,4]"},
    {"sum", {"f32[2,3,4]"}, "axes=[1] keepdim=1", "f32[2,1,4]"},
    {"max", {"i32[2,3,4]"}, "axes=[-1,0]", "i32[3]"},
    {"mean", {"f32[2,3,4]"}, "", "f32[]"},
    {"sum", {"f32[2,3,4]"}, "axes=[1,1]", "E0323 sum: axis 1 repeated in (1,1) for f32[2,3,4]"},
    {"sum", {"f32[2,3,4]"}, "axes=[3]", "E0320 sum: axis 3 is out of range for f32[2,3,4] (rank 3)"},
    {"mean", {"i32[3]"}, "", "E0312 mean: requires a float dtype, got i32[3]"},
    {"max", {"bool[3]"}, "", "E0331 max: arithmetic on bool: bool[3]"},
    {"argmax", {"f32[2,5]"}, "", "i32[2]"},
    {"argmax", {"f32[2,5]"}, "axis=0 keepdim=1", "i32[1,5]"},
    {"argmax", {"f32[2,5]"}, "axis=2", "E0320 argmax: axis 2 is out of range for f32[2,5] (rank 2)"},
    /* axis ops */
    {"softmax", {"f32[2,5]"}, "", "f32[2,5]"},
    {"log_softmax", {"f64[2,5]"}, "axis=0", "f64[2,5]"},
    {"softmax", {"f32[2,5]"}, "axis=-3", "E0320 softmax: axis -3 is out of range for f32[2,5] (rank 2)"},
    {"softmax", {"i32[2,5]"}, "", "E0312 softmax: requires a float dtype, got i32[2,5]"},
    /* norms */
    {"layernorm", {"f32[8,64,128]", "f32[128]", "f32[128]"}, "eps=1e-5", "f32[8,64,128]"},
    {"layernorm", {"f32[8,64,128]"}, "", "f32[8,64,128]"},
    {"layernorm", {"f32[8,64,128]", "f32[64]"}, "", "E0324 layernorm: weight must be f32[128] for input f32[8,64,128], got f32[64]"},
    {"layernorm", {"f32[8,128]", "f32[128]", "f32[8]"}, "", "E0324 layernorm: bias must be f32[128] for input f32[8,128], got f32[8]"},
    {"rmsnorm", {"f32[4]", "f64[4]"}, "", "E0324 rmsnorm: weight must be f32[4] for input f32[4], got f64[4]"},
    {"rmsnorm", {"f32[]"}, "", "E0324 rmsnorm: input needs rank >= 1, got f32[]"},
    /* embedding */
    {"embedding", {"f32[256,128]", "i32[8,64]"}, "", "f32[8,64,128]"},
    {"embedding", {"f32[256,128]", "f32[8,64]"}, "", "E0325 embedding: indices must be i32, got f32[8,64]"},
    {"embedding", {"f32[256]", "i32[8]"}, "", "E0325 embedding: table must be a float matrix [V,C], got f32[256]"},
    /* conv2d */
    {"conv2d", {"f32[1,3,32,32]", "f32[16,3,3,3]", "f32[16]"}, "stride=[1,1] padding=[1,1]", "f32[1,16,32,32]"},
    {"conv2d", {"f32[2,3,32,32]", "f32[16,3,3,3]"}, "stride=[2,2]", "f32[2,16,15,15]"},
    {"conv2d", {"f32[2,3,32,32]", "f32[16,3,3,3]"}, "stride=2 padding=1", "f32[2,16,16,16]"},
    {"conv2d", {"f32[2,3,32,32]", "f32[16,3,3,3]"}, "stride=[2,1]", "f32[2,16,15,30]"},
    {"conv2d", {"f32[2,3,32,32]", "f32[16,3,3,3]"}, "stride=0", "E0332 conv2d: stride must be >= 1 and padding >= 0, got stride (0,0) padding (0,0)"},
    {"conv2d", {"f32[1,4,32,32]", "f32[8,2,3,3]"}, "groups=2", "f32[1,8,30,30]"},
    {"conv2d", {"f32[1,4,32,32]", "f32[6,2,3,3]"}, "groups=3", "E0326 conv2d: groups 3 must divide the input channels 4 and the output channels 6: input f32[1,4,32,32], weight f32[6,2,3,3]"},
    {"conv2d", {"f32[1,4,32,32]", "f32[8,3,3,3]"}, "", "E0326 conv2d: weight expects 3 input channels per group, the input has 4 (groups 1): input f32[1,4,32,32], weight f32[8,3,3,3]"},
    {"conv2d", {"f32[1,3,8,8]", "f32[16,3,3,3]", "f32[8]"}, "", "E0326 conv2d: bias must be f32[16], got f32[8]"},
    {"conv2d", {"f32[1,3,2,2]", "f32[4,3,3,3]"}, "", "E0327 conv2d: empty output: input f32[1,3,2,2] with kernel 3x3, stride (1,1), padding (0,0)"},
    {"conv2d", {"f32[3,8,8]", "f32[4,3,3,3]"}, "", "E0326 conv2d: input must be [N,C,H,W], got f32[3,8,8]"},
    /* pools */
    {"maxpool2d", {"f32[1,3,32,32]"}, "kernel=[2,2]", "f32[1,3,16,16]"},
    {"avgpool2d", {"f32[1,3,32,32]"}, "kernel=[3,3] stride=[1,1] padding=[1,1]", "f32[1,3,32,32]"},
    {"maxpool2d", {"f32[1,3,32,32]"}, "kernel=[3,3] padding=[2,0]", "E0328 maxpool2d: padding 2 exceeds half the kernel 3 on axis 2 (PyTorch requires padding <= kernel/2)"},
    {"avgpool2d", {"f32[1,1,2,2]"}, "kernel=[3,3]", "E0327 avgpool2d: empty output: input f32[1,1,2,2] with kernel 3x3, stride (3,3), padding (0,0)"},
    {"maxpool2d", {"f32[3,32,32]"}, "kernel=[2,2]", "E0326 maxpool2d: input must be [N,C,H,W], got f32[3,32,32]"},
    /* attention */
    {"attention", {"f32[2,4,8,16]", "f32[2,4,10,16]", "f32[2,4,10,32]"}, "causal=0", "f32[2,4,8,32]"},
    {"attention", {"f32[2,4,8,16]", "f32[2,4,8,16]", "f32[2,4,8,16]"}, "", "f32[2,4,8,16]"},
    {"attention", {"f32[2,12,16]", "f32[2,10,16]", "f32[2,10,16]"}, "causal=1", "E0329 attention: causal needs no more queries than keys: q f32[2,12,16], k f32[2,10,16] (12 > 10)"},
    {"attention", {"f32[2,8,16]", "f32[2,8,8]", "f32[2,8,16]"}, "", "E0329 attention: q and k head sizes differ: q f32[2,8,16], k f32[2,8,8] (16 vs 8)"},
    {"attention", {"f32[2,8,16]", "f32[3,8,16]", "f32[3,8,16]"}, "", "E0329 attention: batch dimensions differ: q f32[2,8,16], k f32[3,8,16], v f32[3,8,16]"},
    {"attention", {"f32[2,8,16]", "f32[2,8,16]", "f32[2,9,16]"}, "", "E0329 attention: k and v lengths differ: k f32[2,8,16], v f32[2,9,16] (8 vs 9)"},
};

static CkcArena arena;
static IrModule *mod;
static IrGraph *graph;

static void setup(void) {
  ckc_arena_init(&arena);
  mod = ir_module_new(&arena, "T", "t.ckm");
  graph = ir_graph_new(mod, "forward", true);
}

static void teardown(void) { ckc_arena_free(&arena); }

START_TEST(test_shape_rule) {
  const ShapeCase *c = &cases[_i];
  IrOp op;
  ck_assert_msg(ir_op_from_name(c->op, &op), "unknown op %s", c->op);
  IrNode *in[3];
  int nin = 0;
  CkcLoc loc = {0};
  for (; nin < 3 && c->in[nin]; nin++) {
    CkDType dt;
    CkShape sh;
    parse_type(c->in[nin], &dt, &sh);
    in[nin] = ir_input(graph, NULL, dt, &sh, loc);
  }
  AttrSet as;
  parse_attrs(c->attrs, &as);
  IrErr err;
  IrNode *n = ir_op(graph, op, in, nin, as.a, as.n, NULL, loc, &err);
  char got[700];
  if (n) {
    char t[200];
    snprintf(got, sizeof got, "%s", ck_type_str(n->dtype, &n->shape, t, sizeof t));
  } else {
    snprintf(got, sizeof got, "%s %s", err.id ? err.id : "(no id)", err.msg);
  }
  ck_assert_msg(strcmp(got, c->want) == 0, "case %d %s:\n  got  %s\n  want %s", _i, c->op, got,
                c->want);
  if (n) {
    /* a successful node is registered and passes the verifier */
    ir_set_output(graph, n);
    CkcBuf vb;
    ckc_buf_init(&vb, &arena);
    ck_assert_msg(ir_verify(mod, true, &vb), "verify: %s", ckc_buf_str(&vb));
  } else {
    ck_assert_int_eq(graph->nodes.len, nin); /* a failed op adds no node */
  }
}
END_TEST

/* ---- broadcasting and type strings -------------------------------------------------- */

typedef struct BcastCase {
  const char *a, *b, *want; /* want NULL: incompatible */
} BcastCase;

static const BcastCase bcases[] = {
    {"f32[]", "f32[]", "f32[]"},
    {"f32[3]", "f32[]", "f32[3]"},
    {"f32[5,4]", "f32[1]", "f32[5,4]"},
    {"f32[15,3,5]", "f32[15,1,5]", "f32[15,3,5]"},
    {"f32[15,3,5]", "f32[3,1]", "f32[15,3,5]"},
    {"f32[8,1,6,1]", "f32[7,1,5]", "f32[8,7,6,5]"},
    {"f32[0,3]", "f32[1,3]", "f32[0,3]"},
    {"f32[3]", "f32[4]", NULL},
    {"f32[2,1]", "f32[8,4,3]", NULL},
};

START_TEST(test_broadcast) {
  const BcastCase *c = &bcases[_i];
  CkDType dt;
  CkShape a, b, out;
  parse_type(c->a, &dt, &a);
  parse_type(c->b, &dt, &b);
  bool ok = ck_shape_broadcast(&a, &b, &out);
  ck_assert_int_eq(ok, c->want != NULL);
  /* symmetric */
  CkShape out2;
  ck_assert_int_eq(ck_shape_broadcast(&b, &a, &out2), ok);
  if (ok) {
    char t[100];
    ck_assert_str_eq(ck_type_str(CK_DT_F32, &out, t, sizeof t), c->want);
    ck_assert(ck_shape_eq(&out, &out2));
  }
}
END_TEST

START_TEST(test_type_str_and_numel) {
  char t[64];
  CkShape s = {3, {8, 64, 128}};
  ck_assert_str_eq(ck_type_str(CK_DT_F32, &s, t, sizeof t), "f32[8,64,128]");
  CkShape z = {0};
  ck_assert_str_eq(ck_type_str(CK_DT_BOOL, &z, t, sizeof t), "bool[]");
  char small[6];
  ck_type_str(CK_DT_F32, &s, small, sizeof small); /* truncates, stays terminated */
  ck_assert_uint_eq(strlen(small), 5);
  int64_t n = 0;
  ck_assert(ck_shape_numel(&s, &n));
  ck_assert_int_eq(n, 8 * 64 * 128);
  ck_assert(ck_shape_numel(&z, &n));
  ck_assert_int_eq(n, 1);
  CkShape big = {3, {1LL << 31, 1LL << 31, 4}};
  ck_assert(!ck_shape_numel(&big, &n));
  CkShape fits = {2, {1LL << 31, 1LL << 31}};
  ck_assert(ck_shape_numel(&fits, &n));
  ck_assert_int_eq(n, 1LL << 62);
}
END_TEST

Suite *check_shape_suite(void) {
  Suite *s = suite_create("shape");
  TCase *tc = tcase_create("rules");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_loop_test(tc, test_shape_rule, 0, (int)(sizeof cases / sizeof cases[0]));
  suite_add_tcase(s, tc);
  TCase *tb = tcase_create("broadcast");
  tcase_add_loop_test(tb, test_broadcast, 0, (int)(sizeof bcases / sizeof bcases[0]));
  tcase_add_test(tb, test_type_str_and_numel);
  suite_add_tcase(s, tb);
  return s;
}
