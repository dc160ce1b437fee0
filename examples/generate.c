/*
 * generate.c -- text generation with the tern C API (tern.h only).
 *
 *   tern-generate MODEL [-p PROMPT] [-n N] [--temp T] [--seed S] [--forks K]
 *                 [--reference] [--ids]
 *
 * Opens MODEL (.tern, or .gguf: compiled through the artifact cache when a
 * ternc is found), tokenizes the prompt, prefills one session, forks it into
 * K sessions (they share the prompt's KV pages), and generates N tokens for
 * each of them with one batched forward call per step, sampling each fork
 * with its own sampler (seed S + fork index). Prints each fork's text, and
 * with --ids the generated token ids.
 *
 * Build: cc -std=c99 generate.c $(pkg-config --cflags --libs tern)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tern/tern.h>

#define MAX_FORKS 8

static int check(tern_status s, const char *what) {
  if (s != TERN_OK) {
    fprintf(stderr, "tern-generate: %s: %s (%s)\n", what, tern_last_error(), tern_status_name(s));
    return 1;
  }
  return 0;
}

static void usage(void) {
  fprintf(stderr, "usage: tern-generate MODEL [-p PROMPT] [-n N] [--temp T] [--seed S]\n"
                  "                     [--forks K] [--reference] [--ids]\n");
}

int main(int argc, char **argv) {
  const char *model_path = NULL, *prompt = "Once upon a time";
  int n_predict = 16, n_forks = 2, print_ids = 0, i, k, step, rc = 1;
  tern_model_options mo;
  tern_sampler_params sp;
  tern_model *model = NULL;
  tern_model_info info;
  tern_session *base = NULL, *forks[MAX_FORKS] = {0};
  tern_sampler *samplers[MAX_FORKS] = {0};
  int32_t *prompt_ids = NULL, *out_ids[MAX_FORKS] = {0};
  int n_out[MAX_FORKS] = {0}, done[MAX_FORKS] = {0};
  size_t n_prompt = 0;

  tern_model_options_init(&mo);
  tern_sampler_params_init(&sp);
  sp.seed = 42;
  for (i = 1; i < argc; ++i) {
    const char *a = argv[i];
    int has_value = i + 1 < argc;
    if (!strcmp(a, "-p") && has_value)
      prompt = argv[++i];
    else if (!strcmp(a, "-n") && has_value)
      n_predict = atoi(argv[++i]);
    else if (!strcmp(a, "--temp") && has_value)
      sp.temperature = (float)atof(argv[++i]);
    else if (!strcmp(a, "--seed") && has_value)
      sp.seed = strtoull(argv[++i], NULL, 10);
    else if (!strcmp(a, "--forks") && has_value)
      n_forks = atoi(argv[++i]);
    else if (!strcmp(a, "--reference"))
      mo.path = TERN_PATH_REFERENCE;
    else if (!strcmp(a, "--ids"))
      print_ids = 1;
    else if (a[0] != '-' && !model_path)
      model_path = a;
    else {
      usage();
      return 2;
    }
  }
  if (!model_path || n_predict < 0 || n_forks < 1 || n_forks > MAX_FORKS) {
    usage();
    return 2;
  }

  /* The pool holds the forks; they share the prompt's pages. */
  mo.parallel = (uint32_t)n_forks;
  if (check(tern_model_open(model_path, &mo, &model), "open"))
    return 1;
  if (check(tern_model_get_info(model, &info), "info"))
    goto out;
  fprintf(stderr, "%s\n", tern_model_describe(model));

  /* Tokenize: ask for the size, then fill. */
  if (tern_tokenize(model, prompt, strlen(prompt), TERN_TOKENIZE_ADD_SPECIAL, NULL, 0, &n_prompt) !=
          TERN_ERR_BUFFER_TOO_SMALL &&
      n_prompt != 0) {
    check(TERN_ERR_INTERNAL, "tokenize");
    goto out;
  }
  prompt_ids = malloc((n_prompt ? n_prompt : 1) * sizeof(int32_t));
  if (!prompt_ids || check(tern_tokenize(model, prompt, strlen(prompt), TERN_TOKENIZE_ADD_SPECIAL,
                                         prompt_ids, n_prompt, &n_prompt),
                           "tokenize"))
    goto out;
  if (n_prompt == 0) {
    fprintf(stderr, "tern-generate: the prompt tokenized to nothing\n");
    goto out;
  }

  /* Prefill one session, then fork it: the forks start with its logits. */
  if (check(tern_session_create(model, &base), "session") ||
      check(tern_decode(base, prompt_ids, n_prompt), "prefill"))
    goto out;
  for (k = 0; k < n_forks; ++k) {
    tern_sampler_params p = sp;
    if (sp.seed != TERN_SEED_RANDOM)
      p.seed = sp.seed + (uint64_t)k;
    if (check(tern_session_fork(base, &forks[k]), "fork") ||
        check(tern_sampler_create(model, &p, &samplers[k]), "sampler"))
      goto out;
    for (i = 0; i < (int)n_prompt; ++i)
      if (check(tern_sampler_accept(samplers[k], prompt_ids[i]), "accept"))
        goto out;
    out_ids[k] = malloc((size_t)(n_predict ? n_predict : 1) * sizeof(int32_t));
    if (!out_ids[k])
      goto out;
  }
  tern_session_free(base);
  base = NULL;

  /* Generate: sample each live fork from its logits, then feed all of the
   * new tokens in one forward call. */
  for (step = 0; step < n_predict; ++step) {
    tern_batch_item items[MAX_FORKS];
    int32_t next[MAX_FORKS];
    size_t n_items = 0;
    memset(items, 0, sizeof(items));
    for (k = 0; k < n_forks; ++k) {
      const float *logits;
      size_t n_logits;
      if (done[k])
        continue;
      if (check(tern_session_logits(forks[k], &logits, &n_logits), "logits") ||
          check(tern_sampler_sample(samplers[k], logits, n_logits, &next[k]), "sample") ||
          check(tern_sampler_accept(samplers[k], next[k]), "accept"))
        goto out;
      out_ids[k][n_out[k]++] = next[k];
      if (tern_token_is_eog(model, next[k]) ||
          tern_session_position(forks[k]) + 1 > (int64_t)info.n_ctx) {
        done[k] = 1;
        continue;
      }
      items[n_items].session = forks[k];
      items[n_items].tokens = &next[k];
      items[n_items].n_tokens = 1;
      items[n_items].want_logits = 1;
      ++n_items;
    }
    if (n_items == 0)
      break;
    if (step + 1 < n_predict && tern_forward(model, items, n_items) != TERN_OK) {
      for (i = 0; i < (int)n_items; ++i)
        if (items[i].status != TERN_OK)
          fprintf(stderr, "tern-generate: forward: %s (%s)\n", items[i].message,
                  tern_status_name(items[i].status));
      goto out;
    }
  }

  for (k = 0; k < n_forks; ++k) {
    size_t len = 0;
    char *text;
    tern_detokenize(model, out_ids[k], (size_t)n_out[k], 0, NULL, 0, &len);
    text = malloc(len + 1);
    if (!text || check(tern_detokenize(model, out_ids[k], (size_t)n_out[k], 0, text, len, &len),
                       "detokenize")) {
      free(text);
      goto out;
    }
    text[len] = '\0';
    printf("[%d] %s%s\n", k, prompt, text);
    if (print_ids) {
      printf("ids[%d]:", k);
      for (i = 0; i < n_out[k]; ++i)
        printf(" %d", (int)out_ids[k][i]);
      printf("\n");
    }
    free(text);
  }
  {
    tern_kv_usage kv;
    if (tern_model_kv_usage(model, &kv) == TERN_OK)
      fprintf(stderr, "kv: %u of %u blocks used, %u sessions\n", kv.used_blocks, kv.total_blocks,
              kv.sessions);
  }
  rc = 0;

out:
  for (k = 0; k < MAX_FORKS; ++k) {
    tern_sampler_free(samplers[k]);
    tern_session_free(forks[k]);
    free(out_ids[k]);
  }
  tern_session_free(base);
  free(prompt_ids);
  tern_model_free(model);
  return rc;
}
