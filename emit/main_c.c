/* emit/main_c.c - prints main.c, the command-line driver of a hosted
 * project: `info`, `init --seed N --out W.safetensors`, `infer --weights W
 * --in X.npy ... --out Y.npy`. It is model-specific only in its tables
 * (inputs, their dtypes and shapes); the logic is the same text for every
 * model, so it reads like a hand-written tool. */
#include <stdio.h>
#include <string.h>

#include "emit/emit_impl.h"

static const char *io_dtype(CkDType t) {
  switch (t) {
  case CK_DT_F32: return "CK_IO_F32";
  case CK_DT_F64: return "CK_IO_F64";
  case CK_DT_I32: return "CK_IO_I32";
  case CK_DT_U8: return "CK_IO_U8";
  default: return "CK_IO_BOOL";
  }
}

static void emit_shape_init(CkcBuf *b, const CkShape *s) {
  ckc_buf_puts(b, "{");
  for (int d = 0; d < s->rank; d++) ckc_buf_printf(b, "%s%lld", d ? ", " : "", (long long)s->dims[d]);
  if (s->rank == 0) ckc_buf_puts(b, "0");
  ckc_buf_puts(b, "}");
}

/* The per-model tables main.c works from. */
static void emit_tables(const LowerProgram *p, CkcBuf *b) {
  const char *U = p->upper;
  int nin = p->inputs.len;
  ckc_buf_puts(b,
               "/* The arguments of forward, in order: name, dtype, shape, and for index\n"
               " * inputs of an embedding the number of rows (0 otherwise). */\n"
               "typedef struct InputInfo {\n"
               "  const char *name;\n"
               "  const char *dtype;\n"
               "  CkIoDType io;\n"
               "  int rank;\n"
               "  int64_t dims[8];\n"
               "  int64_t count;\n"
               "  size_t elsize;\n"
               "  int64_t index_rows;\n"
               "} InputInfo;\n\n");
  ckc_buf_printf(b, "static const InputInfo inputs[%d] = {\n", nin > 0 ? nin : 1);
  for (int k = 0; k < nin; k++) {
    const LowerBuf *x = p->inputs.items[k];
    ckc_buf_printf(b, "    {\"%s\", \"%s\", %s, %d, ", x->name, ck_dtype_name(x->dtype), io_dtype(x->dtype),
                   x->shape.rank);
    emit_shape_init(b, &x->shape);
    ckc_buf_printf(b, ", %lld, sizeof(%s), %lld},\n", (long long)x->numel, ck_dtype_ctype(x->dtype),
                   (long long)(x->index_input >= 0 ? x->index_bound : 0));
  }
  if (nin == 0) ckc_buf_puts(b, "    {\"\", \"f32\", CK_IO_F32, 0, {0}, 0, 1, 0},\n");
  ckc_buf_puts(b, "};\n");
  ckc_buf_printf(b, "static const char out_dtype[] = \"%s\";\n", ck_dtype_name(p->out->dtype));
  ckc_buf_printf(b, "static const CkIoDType out_io = %s;\n", io_dtype(p->out->dtype));
  ckc_buf_printf(b, "static const int out_rank = %d;\n", p->out->shape.rank);
  ckc_buf_puts(b, "static const int64_t out_dims[8] = ");
  emit_shape_init(b, &p->out->shape);
  ckc_buf_printf(b, ";\n#define NUM_INPUTS %s_NUM_INPUTS\n\n", U);
}

/* The fixed part of main.c; @WORD@ placeholders are substituted. */
static const char *const main_body[] = {
    "static const char *prog = \"@PFX@\";\n",
    "\n",
    "static int usage(const char *msg) {\n",
    "  if (msg) fprintf(stderr, \"%s: %s\\n\", prog, msg);\n",
    "  fprintf(stderr,\n",
    "          \"usage: %s info\\n\"\n",
    "          \"       %s init --seed N --out W.safetensors\\n\"\n",
    "          \"       %s infer --weights W.safetensors @INPUTS@--out Y.npy\\n\",\n",
    "          prog, prog, prog);\n",
    "  return 2;\n",
    "}\n",
    "\n",
    "/* malloc that never returns NULL for a 0-byte request. */\n",
    "static void *xmalloc(size_t n) {\n",
    "  void *p = malloc(n ? n : 1);\n",
    "  if (!p) {\n",
    "    fprintf(stderr, \"%s: out of memory (%lu bytes)\\n\", prog, (unsigned long)n);\n",
    "    exit(1);\n",
    "  }\n",
    "  return p;\n",
    "}\n",
    "\n",
    "static void print_dims(int rank, const int64_t *dims) {\n",
    "  printf(\"[\");\n",
    "  for (int d = 0; d < rank; d++) printf(\"%s%lld\", d ? \",\" : \"\", (long long)dims[d]);\n",
    "  printf(\"]\");\n",
    "}\n",
    "\n",
    "static CkIoDType param_io(const char *dtype) {\n",
    "  if (strcmp(dtype, \"f64\") == 0) return CK_IO_F64;\n",
    "  if (strcmp(dtype, \"i32\") == 0) return CK_IO_I32;\n",
    "  if (strcmp(dtype, \"u8\") == 0) return CK_IO_U8;\n",
    "  if (strcmp(dtype, \"bool\") == 0) return CK_IO_BOOL;\n",
    "  return CK_IO_F32;\n",
    "}\n",
    "\n",
    "/* One safetensors spec per parameter, pointing into the params blob. */\n",
    "static void param_specs(CkTensorSpec *specs, unsigned char *blob) {\n",
    "  for (int i = 0; i < @PREFIX@_NUM_PARAMS; i++) {\n",
    "    const @TYPE@ *pi = &@PFX@_params[i];\n",
    "    specs[i].name = pi->name;\n",
    "    specs[i].dtype = param_io(pi->dtype);\n",
    "    specs[i].rank = pi->rank;\n",
    "    for (int d = 0; d < 8; d++) specs[i].dims[d] = pi->dims[d];\n",
    "    specs[i].data = blob + pi->offset;\n",
    "  }\n",
    "}\n",
    "\n",
    "static int cmd_info(void) {\n",
    "  printf(\"model @MODEL@ (target @TARGET@)\\n\");\n",
    "  printf(\"parameters: %d tensors, %lld scalars\\n\", @PREFIX@_NUM_PARAMS, (long long)@PREFIX@_PARAM_COUNT);\n",
    "  for (int i = 0; i < @PREFIX@_NUM_PARAMS; i++) {\n",
    "    const @TYPE@ *pi = &@PFX@_params[i];\n",
    "    printf(\"  %-32s %s\", pi->name, pi->dtype);\n",
    "    print_dims(pi->rank, pi->dims);\n",
    "    printf(\" %lld  init %s\\n\", (long long)pi->count, pi->init);\n",
    "  }\n",
    "  for (int k = 0; k < NUM_INPUTS; k++) {\n",
    "    printf(\"input %d: %s %s\", k, inputs[k].name, inputs[k].dtype);\n",
    "    print_dims(inputs[k].rank, inputs[k].dims);\n",
    "    if (inputs[k].index_rows > 0) printf(\" indices in [0, %lld)\", (long long)inputs[k].index_rows);\n",
    "    printf(\"\\n\");\n",
    "  }\n",
    "  printf(\"output: %s\", out_dtype);\n",
    "  print_dims(out_rank, out_dims);\n",
    "  printf(\"\\n\");\n",
    "  printf(\"memory: params %lld bytes, arena %lld bytes\\n\", (long long)@PREFIX@_PARAMS_BYTES,\n",
    "         (long long)@PREFIX@_ARENA_BYTES);\n",
    "  return 0;\n",
    "}\n",
    "\n",
    "/* Every parameter from its own initialiser, on its own random stream\n",
    " * (seed, dotted name): adding a parameter changes no other's values. */\n",
    "static int cmd_init(int argc, char **argv) {\n",
    "  const char *seed_s = NULL, *outp = NULL;\n",
    "  for (int i = 0; i < argc; i++) {\n",
    "    if (strcmp(argv[i], \"--seed\") == 0 && i + 1 < argc) seed_s = argv[++i];\n",
    "    else if (strcmp(argv[i], \"--out\") == 0 && i + 1 < argc) outp = argv[++i];\n",
    "    else return usage(\"init: unknown or incomplete option\");\n",
    "  }\n",
    "  if (!seed_s || !outp) return usage(\"init needs --seed N and --out FILE\");\n",
    "  char *end = NULL;\n",
    "  unsigned long long seed = strtoull(seed_s, &end, 10);\n",
    "  if (!*seed_s || *end || seed_s[0] == '-') return usage(\"init: --seed must be a non-negative integer\");\n",
    "  unsigned char *blob = xmalloc(@PREFIX@_PARAMS_BYTES);\n",
    "  memset(blob, 0, @PREFIX@_PARAMS_BYTES);\n",
    "  for (int i = 0; i < @PREFIX@_NUM_PARAMS; i++) {\n",
    "    const @TYPE@ *pi = &@PFX@_params[i];\n",
    "    CkRng rng;\n",
    "    ck_rng_seed_stream(&rng, (uint64_t)seed, pi->name);\n",
    "    if (strcmp(pi->dtype, \"f32\") != 0) continue; /* non-float params start at zero */\n",
    "    float *w = (float *)(void *)(blob + pi->offset);\n",
    "    if (pi->init_kind == @PREFIX@_INIT_NORMAL)\n",
    "      ck_rng_fill_normal(&rng, w, pi->count, (float)pi->a, (float)pi->b);\n",
    "    else if (pi->init_kind == @PREFIX@_INIT_UNIFORM)\n",
    "      ck_rng_fill_uniform(&rng, w, pi->count, (float)pi->a, (float)pi->b);\n",
    "    else\n",
    "      for (int64_t e = 0; e < pi->count; e++) w[e] = (float)pi->a;\n",
    "  }\n",
    "  CkTensorSpec specs[@PREFIX@_NUM_PARAMS > 0 ? @PREFIX@_NUM_PARAMS : 1];\n",
    "  param_specs(specs, blob);\n",
    "  CkIoErr err;\n",
    "  if (ck_safetensors_write(outp, specs, @PREFIX@_NUM_PARAMS, &err) != CK_IO_OK) {\n",
    "    fprintf(stderr, \"%s: %s\\n\", prog, err.msg);\n",
    "    free(blob);\n",
    "    return 1;\n",
    "  }\n",
    "  free(blob);\n",
    "  return 0;\n",
    "}\n",
    "\n",
    "/* Explains an index error: the first index of input k outside its table. */\n",
    "static void report_index(int k, const void *data, const char *path) {\n",
    "  if (k < 0 || k >= NUM_INPUTS || inputs[k].io != CK_IO_I32) {\n",
    "    fprintf(stderr, \"%s: an embedding index is out of range\\n\", prog);\n",
    "    return;\n",
    "  }\n",
    "  const int32_t *v = data;\n",
    "  for (int64_t i = 0; i < inputs[k].count; i++) {\n",
    "    if (inputs[k].index_rows > 0 && (v[i] < 0 || v[i] >= inputs[k].index_rows)) {\n",
    "      fprintf(stderr, \"%s: %s: input '%s': index %ld at position %lld is outside [0, %lld)\\n\",\n",
    "              prog, path, inputs[k].name, (long)v[i], (long long)i, (long long)inputs[k].index_rows);\n",
    "      return;\n",
    "    }\n",
    "  }\n",
    "  fprintf(stderr, \"%s: %s: input '%s': an index is out of range\\n\", prog, path, inputs[k].name);\n",
    "}\n",
    "\n",
    "static int cmd_infer(int argc, char **argv) {\n",
    "  const char *wpath = NULL, *outp = NULL;\n",
    "  const char *inp[NUM_INPUTS > 0 ? NUM_INPUTS : 1] = {0};\n",
    "  int nin = 0;\n",
    "  for (int i = 0; i < argc; i++) {\n",
    "    if (strcmp(argv[i], \"--weights\") == 0 && i + 1 < argc) wpath = argv[++i];\n",
    "    else if (strcmp(argv[i], \"--out\") == 0 && i + 1 < argc) outp = argv[++i];\n",
    "    else if (strcmp(argv[i], \"--in\") == 0 && i + 1 < argc) {\n",
    "      if (nin == NUM_INPUTS) return usage(\"infer: too many --in files\");\n",
    "      inp[nin++] = argv[++i];\n",
    "    } else return usage(\"infer: unknown or incomplete option\");\n",
    "  }\n",
    "  if (!wpath || !outp || nin != NUM_INPUTS)\n",
    "    return usage(\"infer needs --weights FILE, one --in FILE per input and --out FILE\");\n",
    "  int rc = 1;\n",
    "  CkIoErr err;\n",
    "  unsigned char *blob = xmalloc(@PREFIX@_PARAMS_BYTES);\n",
    "  float *arena = xmalloc(@PREFIX@_ARENA_BYTES);\n",
    "  void *in[NUM_INPUTS > 0 ? NUM_INPUTS : 1] = {0};\n",
    "  void *out = xmalloc((size_t)@PREFIX@_OUT_COUNT * sizeof(@OUT_CTYPE@));\n",
    "  CkTensorSpec specs[@PREFIX@_NUM_PARAMS > 0 ? @PREFIX@_NUM_PARAMS : 1];\n",
    "  param_specs(specs, blob);\n",
    "  if (ck_safetensors_read(wpath, specs, @PREFIX@_NUM_PARAMS, &err) != CK_IO_OK) {\n",
    "    fprintf(stderr, \"%s: %s\\n\", prog, err.msg);\n",
    "    goto done;\n",
    "  }\n",
    "  for (int k = 0; k < NUM_INPUTS; k++) {\n",
    "    in[k] = xmalloc((size_t)inputs[k].count * inputs[k].elsize);\n",
    "    if (ck_npy_read(inp[k], inputs[k].io, inputs[k].rank, inputs[k].dims, in[k], &err) != CK_IO_OK) {\n",
    "      fprintf(stderr, \"%s: input '%s': %s\\n\", prog, inputs[k].name, err.msg);\n",
    "      goto done;\n",
    "    }\n",
    "  }\n",
    "  int st = @CALL_FORWARD@;\n",
    "  if (st != @PREFIX@_OK) {\n",
    "    int k = st - @PREFIX@_ERR_INDEX_RANGE;\n",
    "    if (st >= @PREFIX@_ERR_INDEX_RANGE && k < NUM_INPUTS) report_index(k, in[k], inp[k]);\n",
    "    else if (st == @PREFIX@_ERR_INDEX_RANGE + NUM_INPUTS) report_index(-1, NULL, NULL);\n",
    "    else fprintf(stderr, \"%s: forward failed with code %d\\n\", prog, st);\n",
    "    goto done;\n",
    "  }\n",
    "  if (ck_npy_write(outp, out_io, out_rank, out_dims, out, &err) != CK_IO_OK) {\n",
    "    fprintf(stderr, \"%s: %s\\n\", prog, err.msg);\n",
    "    goto done;\n",
    "  }\n",
    "  rc = 0;\n",
    "done:\n",
    "  for (int k = 0; k < NUM_INPUTS; k++) free(in[k]);\n",
    "  free(out);\n",
    "  free(arena);\n",
    "  free(blob);\n",
    "  return rc;\n",
    "}\n",
    "\n",
    "int main(int argc, char **argv) {\n",
    "  if (argc < 2) return usage(NULL);\n",
    "  if (strcmp(argv[1], \"--help\") == 0 || strcmp(argv[1], \"-h\") == 0) {\n",
    "    usage(NULL);\n",
    "    return 0;\n",
    "  }\n",
    "  if (strcmp(argv[1], \"info\") == 0) {\n",
    "    if (argc != 2) return usage(\"info takes no arguments\");\n",
    "    return cmd_info();\n",
    "  }\n",
    "  if (strcmp(argv[1], \"init\") == 0) return cmd_init(argc - 2, argv + 2);\n",
    "  if (strcmp(argv[1], \"infer\") == 0) return cmd_infer(argc - 2, argv + 2);\n",
    "  return usage(\"unknown command\");\n",
    "}\n",
    NULL,
};

/* Copies tmpl into b replacing each placeholder word by its value. */
static void emit_subst(CkcBuf *b, const char *tmpl, const char *const *keys, const char *const *vals, int n) {
  for (const char *q = tmpl; *q;) {
    int hit = -1;
    for (int i = 0; i < n && hit < 0; i++)
      if (strncmp(q, keys[i], strlen(keys[i])) == 0) hit = i;
    if (hit >= 0) {
      ckc_buf_puts(b, vals[hit]);
      q += strlen(keys[hit]);
    } else {
      ckc_buf_putc(b, *q++);
    }
  }
}

void emit_main_c(const LowerProgram *p, CkcBuf *b) {
  CkcArena *a = p->module->arena;
  emit_banner(p, b);
  ckc_buf_printf(b,
                 "/* main.c - command-line driver of model %s:\n"
                 " *   %s info | init --seed N --out W.safetensors |\n"
                 " *   infer --weights W.safetensors --in X.npy ... --out Y.npy\n"
                 " * Any file error: one line naming the file, exit 1; usage errors: exit 2. */\n",
                 p->module->model_name, p->prefix);
  ckc_buf_printf(b, "#include <stdint.h>\n#include <stdio.h>\n#include <stdlib.h>\n#include <string.h>\n\n"
                    "#include \"ck_io.h\"\n#include \"ck_rng.h\"\n#include \"%s.h\"\n\n",
                 emit_stem(p));
  emit_tables(p, b);
  /* INPUTS in the usage line, the forward call */
  CkcBuf ins, call;
  ckc_buf_init(&ins, a);
  ckc_buf_init(&call, a);
  ckc_buf_printf(&call, "%s_forward((const float *)(const void *)blob, arena", p->prefix);
  for (int k = 0; k < p->inputs.len; k++) {
    const LowerBuf *x = p->inputs.items[k];
    ckc_buf_printf(&ins, "--in %s.npy ", x->name);
    ckc_buf_printf(&call, ", (const %s *)in[%d]", ck_dtype_ctype(x->dtype), k);
  }
  ckc_buf_printf(&call, ", (%s *)out)", ck_dtype_ctype(p->out->dtype));
  char tn[200];
  snprintf(tn, sizeof tn, "%c%sParamInfo", p->upper[0], p->prefix + 1);
  const char *model_target = ckc_arena_printf(a, "%s", p->module->model_name);
  const char *keys[] = {"@CALL_FORWARD@", "@OUT_CTYPE@", "@INPUTS@", "@PREFIX@", "@PFX@", "@TYPE@", "@MODEL@", "@TARGET@"};
  const char *vals[] = {ckc_buf_str(&call), ck_dtype_ctype(p->out->dtype), ckc_buf_str(&ins),
                        p->upper, p->prefix, tn, model_target, p->target->name};
  for (int i = 0; main_body[i]; i++) emit_subst(b, main_body[i], keys, vals, 8);
}
