/*
 * tern.h -- the public C API of the ternc runtime (libtern.so).
 *
 * Runs ternary BitNet b1.58 models: a compiled `.tern` artifact, or a GGUF
 * (compiled into the artifact cache when a `ternc` compiler is found, else
 * run on the scalar reference forward pass, as `tern run` does). Sessions on
 * one shared, paged KV pool; batched forward calls across sessions; the
 * tokenizer; llama.cpp's sampling chain; chat templates.
 *
 * Plain C (C99 and later, and C++). Link with `pkg-config --cflags --libs tern`.
 * docs/c-api.md has the design; the rules in short:
 *
 * Errors. Every function that can fail returns a tern_status (TERN_OK = 0).
 * On failure the calling thread's last-error message says what went wrong
 * and names the thing at fault (argument, token id, file, key); read it with
 * tern_last_error(). It is thread-local and stays until the next failing call
 * on that thread (successful calls do not clear it). Batch items carry their
 * own status and message (tern_batch_item). Getters that return a value
 * instead of a status document their value on error (and set the message).
 * Nothing aborts on bad input; null handles and null pointers are errors.
 *
 * Ownership. Every object made by a tern_*_create / _open / _fork function is
 * freed by its tern_*_free function (which accepts NULL). Sessions and
 * samplers keep a reference to their model: free them before the model.
 * Strings returned as `const char *` are owned by the object they come from
 * (valid while it lives, unless documented otherwise) or are static.
 * Output buffers are the caller's: functions that fill one take its capacity
 * and report the size needed (TERN_ERR_BUFFER_TOO_SMALL when it does not fit,
 * with the needed size in the size out-parameter).
 *
 * Threads. A model may be used from several threads at once: tokenizing,
 * creating / forking / freeing sessions and tern_forward on *different*
 * sessions are safe concurrently (tern_forward calls share the weights and
 * the KV pool; they are serialised internally where the code needs it).
 * One session (a fork reads its source), one sampler, one detokenizer, one
 * stop matcher and one chat are used by one thread at a time.
 */
#ifndef TERN_TERN_H
#define TERN_TERN_H

#include <stddef.h>
#include <stdint.h>

#if defined(__GNUC__)
#define TERN_API __attribute__((visibility("default")))
#else
#define TERN_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* The version of this API. A change of the major number breaks source or
 * binary compatibility (and changes the library's SONAME, libtern.so.MAJOR). */
#define TERN_VERSION_MAJOR 0
#define TERN_VERSION_MINOR 3
#define TERN_VERSION_PATCH 0

/* "MAJOR.MINOR.PATCH" of the library actually loaded. */
TERN_API const char *tern_version(void);

/* ------------------------------------------------------------------------ */
/* Errors                                                                    */

typedef enum tern_status {
  TERN_OK = 0,
  TERN_ERR_INVALID_ARGUMENT = 1, /* null handle or pointer, bad option, bad token id, bad size */
  TERN_ERR_NOT_FOUND = 2,        /* a file, a compiler, a template name that does not exist */
  TERN_ERR_BAD_MODEL = 3,        /* the file is not a model this runtime can run (format, keys) */
  TERN_ERR_UNSUPPORTED = 4,      /* valid, but not implemented here (arch, CPU, feature) */
  TERN_ERR_BUFFER_TOO_SMALL = 5, /* an output buffer is too small; the size needed is reported */
  TERN_ERR_CONTEXT_FULL = 6,     /* the tokens do not fit in the session's context (ctx_size) */
  TERN_ERR_KV_EXHAUSTED = 7,     /* the shared KV pool has no free pages left */
  TERN_ERR_STATE = 8,            /* the call is not valid now (e.g. no logits to read) */
  TERN_ERR_BATCH = 9,            /* tern_forward ran; some items failed: see their status */
  TERN_ERR_IO = 10,              /* reading a file or running the compiler failed */
  TERN_ERR_OUT_OF_MEMORY = 11,
  TERN_ERR_INTERNAL = 12, /* a bug: please report it with the message */
  /* Not a status: makes the enum as wide as int, so that any int value a
   * caller passes is a valid tern_status (C and C++ agree). */
  TERN_STATUS_MAX_ENUM = 0x7fffffff
} tern_status;

/* The calling thread's message for its last failed call ("" when none). The
 * pointer is valid until the next failing tern_* call on this thread. */
TERN_API const char *tern_last_error(void);
/* A static name for a status ("TERN_OK", "TERN_ERR_KV_EXHAUSTED", ...;
 * "TERN_ERR_UNKNOWN" for values outside the enum). */
TERN_API const char *tern_status_name(tern_status status);

/* ------------------------------------------------------------------------ */
/* Models                                                                    */

typedef struct tern_model tern_model;
typedef struct tern_session tern_session;
typedef struct tern_sampler tern_sampler;

/* How a GGUF file is run (a .tern artifact is always run as compiled). */
typedef enum tern_model_path {
  /* Compile into the artifact cache when a ternc is found ($TERNC, next to
   * the running executable, or on $PATH), else the reference path. The
   * default, as `tern run MODEL.gguf`. */
  TERN_PATH_AUTO = 0,
  /* Compile with ternc into the cache; no ternc is an error (`--compile`). */
  TERN_PATH_COMPILE = 1,
  /* The scalar reference forward pass (`--reference`): slow, exact oracle. */
  TERN_PATH_REFERENCE = 2,
  TERN_PATH_MAX_ENUM = 0x7fffffff /* not a path: the enum is as wide as int */
} tern_model_path;

/* Called with one line of progress or a note (no trailing newline). */
typedef void (*tern_log_fn)(void *user, const char *line);

/* Options for tern_model_open. Always initialise with
 * tern_model_options_init() and then set the fields you need: later
 * versions may add fields at the end (with a new major version). */
typedef struct tern_model_options {
  int32_t threads;       /* thread pool size; 0 = all cores (default 1, as `tern -t`) */
  uint32_t ctx_size;     /* positions per session; 0 = min(model's, 4096) (`-c`) */
  uint32_t parallel;     /* sessions the KV pool holds at full context (default 1, `-np`) */
  uint64_t kv_mem_bytes; /* KV pool size in bytes; wins over ctx_size x parallel (`--kv-mem`) */
  uint32_t kv_page_size; /* KV positions per page (default 16) */
  int prefix_cache;      /* share full pages of common prompt prefixes (default 1) */
  int verify_weights;    /* .tern: hash the weights section on open (default 1) */
  tern_model_path path;  /* GGUF: how to run it (default TERN_PATH_AUTO) */
  const char *target;    /* GGUF compiled: ternc --target (NULL = "native") */
  tern_log_fn log;       /* notes and compiler output; NULL = standard error */
  void *log_user;        /* passed to log */
} tern_model_options;

TERN_API void tern_model_options_init(tern_model_options *options);

/* Opens a model: a path ending in ".tern" is a compiled artifact, anything
 * else a GGUF (see tern_model_path). The artifact cache folder is
 * $TERN_CACHE_DIR, else $XDG_CACHE_HOME/ternc, else ~/.cache/ternc.
 * options may be NULL (the defaults). On error *model is set to NULL. */
TERN_API tern_status tern_model_open(const char *path, const tern_model_options *options,
                                     tern_model **model);
/* Frees the model (NULL is fine). Every session and sampler of it must have
 * been freed first. */
TERN_API void tern_model_free(tern_model *model);

typedef struct tern_model_info {
  int32_t n_vocab; /* logits per row; token ids are in [0, n_vocab) */
  uint32_t n_ctx;  /* positions per session (the resolved ctx_size) */
  uint32_t n_ctx_train;
  uint32_t n_embd, n_layer, n_head, n_head_kv;
  uint32_t threads;      /* the resolved thread count */
  int32_t bos, eos, eot; /* special ids; -1 where the model has none */
  int compiled;          /* 1: a compiled artifact runs; 0: the reference path */
  int has_tokenizer;     /* 0: tokenize / detokenize / chat fail (no vocabulary) */
  const char *arch;      /* general.architecture, owned by the model */
  const char *name;      /* general.name ("" when absent), owned by the model */
} tern_model_info;

TERN_API tern_status tern_model_get_info(const tern_model *model, tern_model_info *info);
/* One line: source, kernel path, storage formats, threads, ctx, KV pool.
 * Owned by the model; NULL (and a message) when model is NULL. */
TERN_API const char *tern_model_describe(const tern_model *model);

/* KV pool figures: blocks of page_size positions (all layers). */
typedef struct tern_kv_usage {
  uint32_t page_size;
  uint32_t total_blocks, free_blocks, used_blocks, cached_blocks;
  uint32_t sessions;
  uint64_t prefix_hit_positions; /* positions not computed thanks to the prefix cache */
} tern_kv_usage;

TERN_API tern_status tern_model_kv_usage(const tern_model *model, tern_kv_usage *usage);

/* ------------------------------------------------------------------------ */
/* Tokenizer                                                                 */

/* Flags for tern_tokenize. */
#define TERN_TOKENIZE_ADD_SPECIAL 1u   /* BOS (and EOS) as the model's metadata says */
#define TERN_TOKENIZE_PARSE_SPECIAL 2u /* "<|eot_id|>" in the text is that one token */

/* Tokenizes text[0..text_len) (any bytes). Writes at most `capacity` ids to
 * `tokens` and the count to *n_tokens; when the ids do not fit, returns
 * TERN_ERR_BUFFER_TOO_SMALL with the count needed in *n_tokens (tokens may
 * then be NULL with capacity 0, to ask for the size). */
TERN_API tern_status tern_tokenize(const tern_model *model, const char *text, size_t text_len,
                                   unsigned flags, int32_t *tokens, size_t capacity,
                                   size_t *n_tokens);

/* Flags for tern_token_to_piece and tern_detokenize. */
#define TERN_DETOKENIZE_RENDER_SPECIAL 1u     /* control tokens as their text ("<|eot_id|>") */
#define TERN_DETOKENIZE_KEEP_LEADING_SPACE 2u /* SentencePiece: keep the prefix space */

/* The bytes one token contributes to text (not NUL-terminated; a piece may
 * be part of a multi-byte UTF-8 character). Size handling as tern_tokenize.
 * A token id outside [0, n_vocab) is TERN_ERR_INVALID_ARGUMENT. */
TERN_API tern_status tern_token_to_piece(const tern_model *model, int32_t token, unsigned flags,
                                         char *buf, size_t capacity, size_t *len);
/* The text of a whole sequence (raw bytes, not NUL-terminated). Size
 * handling as tern_tokenize; bad ids are TERN_ERR_INVALID_ARGUMENT. */
TERN_API tern_status tern_detokenize(const tern_model *model, const int32_t *tokens,
                                     size_t n_tokens, unsigned flags, char *buf, size_t capacity,
                                     size_t *len);
/* Streaming detokenizer for generated tokens: each push returns only
 * complete, valid UTF-8 (bytes of an unfinished character are held back
 * until a later token completes them; bytes that can never form one come out
 * as U+FFFD). One per output stream; used by one thread at a time. flags:
 * TERN_DETOKENIZE_*; the SentencePiece leading space is dropped once at the
 * start unless KEEP_LEADING_SPACE. */
typedef struct tern_detokenizer tern_detokenizer;
TERN_API tern_status tern_detokenizer_create(const tern_model *model, unsigned flags,
                                             tern_detokenizer **detokenizer);
/* The text `token` completes: *text (not NUL-terminated, *len bytes, may be
 * 0) is owned by the detokenizer and valid until its next call. */
TERN_API tern_status tern_detokenizer_push(tern_detokenizer *detokenizer, int32_t token,
                                           const char **text, size_t *len);
/* What is held back (an incomplete tail becomes U+FFFD), and a reset to the
 * initial state. *text as for push. */
TERN_API tern_status tern_detokenizer_flush(tern_detokenizer *detokenizer, const char **text,
                                            size_t *len);
TERN_API void tern_detokenizer_free(tern_detokenizer *detokenizer);

/* 1 when `token` ends generation (EOS, EOT, "<|im_end|>", ...), else 0
 * (also for bad ids or a NULL model). */
TERN_API int tern_token_is_eog(const tern_model *model, int32_t token);

/* Stop strings: watches generated text (the pieces a tern_detokenizer
 * returns, in order) for any of a set of strings. A stop string may span
 * several tokens, so text that could still become the start of one is held
 * back until a later piece decides it: each push returns only text that is
 * safe to show. On a match the text before the stop string comes out, the
 * stop string and everything after it are dropped, and *stopped turns 1 (and
 * stays 1: later pushes return no text). Matching is on bytes. */
typedef struct tern_stop_matcher tern_stop_matcher;
/* stops[0..n_stops): NUL-terminated strings (copied); empty ones are
 * ignored; none at all never stops (the text passes through). */
TERN_API tern_status tern_stop_matcher_create(const char *const *stops, size_t n_stops,
                                              tern_stop_matcher **matcher);
/* Feeds text[0..len). *out (*out_len bytes, not NUL-terminated, owned by the
 * matcher, valid until its next call) is the text safe to show now;
 * *stopped is 1 once a stop string has matched. */
TERN_API tern_status tern_stop_matcher_push(tern_stop_matcher *matcher, const char *text,
                                            size_t len, const char **out, size_t *out_len,
                                            int *stopped);
/* The end of the text without a stop: releases what is held back (nothing
 * after a stop). *out as for push. */
TERN_API tern_status tern_stop_matcher_flush(tern_stop_matcher *matcher, const char **out,
                                             size_t *out_len);
TERN_API void tern_stop_matcher_free(tern_stop_matcher *matcher);

/* ------------------------------------------------------------------------ */
/* Sessions and the forward pass                                             */

/* A new, empty session (one sequence). It takes no KV memory until fed. */
TERN_API tern_status tern_session_create(tern_model *model, tern_session **session);
/* A new session holding what `session` holds (positions, tokens, and the
 * last logits), sharing its KV pages copy-on-write: no KV memory is taken. */
TERN_API tern_status tern_session_fork(const tern_session *session, tern_session **fork);
/* Rewinds to the first n_positions positions (<= the position). The logits
 * of the last forward are dropped. */
TERN_API tern_status tern_session_truncate(tern_session *session, uint64_t n_positions);
/* Frees the session and returns its KV pages to the pool (NULL is fine). */
TERN_API void tern_session_free(tern_session *session);
/* The number of positions fed (the next token's position); -1 when NULL. */
TERN_API int64_t tern_session_position(const tern_session *session);
/* The tokens at positions [0, position): *tokens is owned by the session
 * and valid until its next truncate / forward / free. */
TERN_API tern_status tern_session_tokens(const tern_session *session, const int32_t **tokens,
                                         size_t *n_tokens);

/* One session's part of a forward call. */
typedef struct tern_batch_item {
  tern_session *session; /* in */
  const int32_t *tokens; /* in: fed at the session's next positions */
  size_t n_tokens;       /* in: >= 1 */
  int want_logits;       /* in: nonzero: keep the logits of the last token (tern_session_logits) */
  tern_status status;    /* out: this item's result */
  /* out: "" or the error; owned by the session and valid until its next call
   * (for a malformed call: the thread's last-error message) */
  const char *message;
} tern_batch_item;

/* Feeds every item (each session at most once, all of this model) in shared
 * forward calls: the weights are read once for all of them; a token's logits
 * do not depend on what else shares the call. An item that fails (bad token
 * id, TERN_ERR_CONTEXT_FULL, TERN_ERR_KV_EXHAUSTED) leaves its session as it
 * was and does not affect the others. Returns TERN_OK when every item
 * succeeded, TERN_ERR_BATCH when the call ran and some failed (see their
 * status), or another code for a malformed call (NULL items, a session twice
 * or of another model): then nothing ran and every item has that status. */
TERN_API tern_status tern_forward(tern_model *model, tern_batch_item *items, size_t n_items);
/* One session: tern_forward with one item that keeps the logits. Returns
 * that item's status (its message is also the thread's last error). */
TERN_API tern_status tern_decode(tern_session *session, const int32_t *tokens, size_t n_tokens);
/* The logits (n_vocab floats) of the last token of the session's last
 * successful forward that asked for them. Owned by the session, valid until
 * its next forward / truncate / free. TERN_ERR_STATE when there are none. */
TERN_API tern_status tern_session_logits(const tern_session *session, const float **logits,
                                         size_t *n_logits);

/* Reading a row of logits (n_logits = n_vocab floats, e.g. from
 * tern_session_logits) without a sampler. */

/* The id of the highest logit; the lowest id wins ties. */
TERN_API tern_status tern_logits_argmax(const float *logits, size_t n_logits, int32_t *token);
/* The k most probable tokens of the row (softmax in double precision over
 * the whole row): ids[i] and probs[i] by probability descending, then id
 * ascending (`tern eval --n-probs`). Writes min(k, n_logits) entries and
 * that count to *n; ids and probs must hold k entries (may be NULL when k
 * is 0). */
TERN_API tern_status tern_logits_top_probs(const float *logits, size_t n_logits, size_t k,
                                           int32_t *ids, double *probs, size_t *n);

/* ------------------------------------------------------------------------ */
/* Sampling: llama.cpp's chain (logit bias -> penalties -> top-k -> top-p ->   */
/* min-p -> temperature -> seeded draw; greedy when temperature <= 0).        */

typedef struct tern_logit_bias {
  int32_t token;
  float bias; /* finite, or -INFINITY to ban the token */
} tern_logit_bias;

/* tern_sampler_params.seed: draw a random seed (tern_sampler_seed tells it). */
#define TERN_SEED_RANDOM UINT64_MAX

/* Initialise with tern_sampler_params_init (llama.cpp's defaults). */
typedef struct tern_sampler_params {
  float temperature;                 /* --temp, 0.8; <= 0: greedy */
  int32_t top_k;                     /* --top-k, 40; 0: off */
  float top_p;                       /* --top-p, 0.95; in (0, 1], 1: off */
  float min_p;                       /* --min-p, 0.05; in [0, 1], 0: off */
  int32_t repeat_last_n;             /* --repeat-last-n, 64; 0: off, -1: the context size */
  float repeat_penalty;              /* --repeat-penalty, 1.0 (off) */
  float frequency_penalty;           /* --frequency-penalty, 0 */
  float presence_penalty;            /* --presence-penalty, 0 */
  uint64_t seed;                     /* --seed; TERN_SEED_RANDOM (the default): random */
  const tern_logit_bias *logit_bias; /* n_logit_bias entries (copied at create) */
  size_t n_logit_bias;
  int ignore_eos; /* ban every end-of-generation token (--ignore-eos) */
} tern_sampler_params;

TERN_API void tern_sampler_params_init(tern_sampler_params *params);

/* A sampler for `model`'s vocabulary (params may be NULL: the defaults).
 * Bad parameters are TERN_ERR_INVALID_ARGUMENT naming the flag. */
TERN_API tern_status tern_sampler_create(const tern_model *model, const tern_sampler_params *params,
                                         tern_sampler **sampler);
/* A sampler for a bare vocabulary of n_vocab tokens, without a model (logits
 * from elsewhere; `tern bench --sampling`). n_ctx is what repeat_last_n = -1
 * means (0: unknown, and repeat_last_n = -1 is then an error). ignore_eos needs a model's
 * end-of-generation tokens: it is TERN_ERR_INVALID_ARGUMENT here (ban them
 * with logit_bias). Since 0.3. */
TERN_API tern_status tern_sampler_create_vocab(int32_t n_vocab, int32_t n_ctx,
                                               const tern_sampler_params *params,
                                               tern_sampler **sampler);
/* An independent copy (penalty window and generator state), e.g. for a fork. */
TERN_API tern_status tern_sampler_clone(const tern_sampler *sampler, tern_sampler **clone);
TERN_API void tern_sampler_free(tern_sampler *sampler);
/* The seed in use (the drawn one when TERN_SEED_RANDOM was asked); 0 on NULL. */
TERN_API uint64_t tern_sampler_seed(const tern_sampler *sampler);
/* Draws the next token from logits[0..n_logits) (n_logits must be n_vocab).
 * Does not record it: call tern_sampler_accept for the tokens the penalties
 * should see (the prompt's and each generated one). */
TERN_API tern_status tern_sampler_sample(tern_sampler *sampler, const float *logits,
                                         size_t n_logits, int32_t *token);
/* Pushes a token into the penalty window; bad ids are TERN_ERR_INVALID_ARGUMENT. */
TERN_API tern_status tern_sampler_accept(tern_sampler *sampler, int32_t token);
/* Forgets the penalty window and restarts the generator from `seed`
 * (TERN_SEED_RANDOM: a new random seed). */
TERN_API tern_status tern_sampler_reset(tern_sampler *sampler, uint64_t seed);

/* ------------------------------------------------------------------------ */
/* Chat templates (built-ins: "bitnet" (BitNet b1.58 2B4T), "llama3", "chatml") */

typedef struct tern_chat_message {
  const char *role;    /* "system", "user" or "assistant" */
  const char *content; /* NUL-terminated text */
} tern_chat_message;

/* The built-in templates' names, comma-separated ("bitnet, llama3, chatml";
 * static). */
TERN_API const char *tern_chat_template_names(void);
/* The template tern_chat_apply_template uses for `name`: a built-in's name
 * when name is not NULL, else the one the model's tokenizer.chat_template
 * names (the "bitnet" one when the model names none). *template_name is a
 * static string. With a name, model may be NULL: the call then only checks
 * that the name is a built-in's (TERN_ERR_NOT_FOUND, listing them, if not). */
TERN_API tern_status tern_chat_template(const tern_model *model, const char *name,
                                        const char **template_name);
/* Renders messages to prompt text, byte for byte as Hugging Face's Jinja
 * renderer does with the template (name: a built-in's name, or NULL for the
 * model's), the model's BOS/EOS text, and add_generation_prompt (nonzero:
 * end with the assistant header). Writes a NUL-terminated string when it
 * fits (`*len` excludes the NUL); otherwise TERN_ERR_BUFFER_TOO_SMALL with
 * the length needed in *len (a buffer of *len + 1 bytes fits). */
TERN_API tern_status tern_chat_apply_template(const tern_model *model, const char *name,
                                              const tern_chat_message *messages, size_t n_messages,
                                              int add_generation_prompt, char *buf, size_t capacity,
                                              size_t *len);
/* Tokenizes rendered chat text: special tokens parsed, BOS in front only
 * when start_of_session is nonzero, the tokenizer adds one and the text does
 * not already begin with it (llama3 writes it itself); never an EOS. Size
 * handling as tern_tokenize. */
TERN_API tern_status tern_chat_tokenize(const tern_model *model, const char *text, size_t text_len,
                                        int start_of_session, int32_t *tokens, size_t capacity,
                                        size_t *n_tokens);

/* A conversation kept in one session across turns: the chat object renders
 * each new message as only the tokens to append to what the session already
 * holds (the rest of the previous assistant turn, then the new turn), so
 * earlier turns are never fed again. After every user turn the session holds
 * exactly tern_chat_apply_template(all messages, add_generation_prompt = 1)
 * tokenized with tern_chat_tokenize, except that bitnet and llama3 trim
 * message content, while a reply with surrounding whitespace stays in the
 * session as generated. Needs a tokenizer (TERN_ERR_UNSUPPORTED otherwise).
 * The chat does not feed the session: the caller feeds the tokens it hands
 * out (one chat per session; one thread at a time). Message content is
 * content[0..len) (any bytes; content may be NULL when len is 0). */
typedef struct tern_chat tern_chat;

/* Where a chat's template comes from. */
typedef enum tern_chat_template_source {
  TERN_CHAT_TEMPLATE_OVERRIDE = 0, /* the name given to tern_chat_create */
  TERN_CHAT_TEMPLATE_GGUF = 1,     /* recognised from tokenizer.chat_template */
  TERN_CHAT_TEMPLATE_DEFAULT = 2,  /* the model names none: "bitnet" */
  TERN_CHAT_TEMPLATE_SOURCE_MAX_ENUM = 0x7fffffff
} tern_chat_template_source;

typedef struct tern_chat_info {
  const char *template_name; /* "bitnet", "llama3", "chatml" (static) */
  tern_chat_template_source source;
  const char *source_name; /* "override", "gguf", "default" (static) */
  /* 1: the GGUF's string is the built-in's reference text (or a name), so
   * the rendering is exactly Hugging Face's; 0: recognised by substrings */
  int exact;
  const char *reason;        /* one line: how it was recognised ("" when not from the GGUF) */
  const char *end_of_turn;   /* the text that ends an assistant turn ("<|eot_id|>"; static) */
  int32_t end_of_turn_token; /* that text's token id; -1 when it is not one token */
} tern_chat_info;

/* A new conversation for `model` in the template `template_name` (a
 * built-in's name; NULL: the model's, as tern_chat_template). Strings of the
 * info live as long as the chat. */
TERN_API tern_status tern_chat_create(const tern_model *model, const char *template_name,
                                      tern_chat **chat);
TERN_API void tern_chat_free(tern_chat *chat);
TERN_API tern_status tern_chat_get_info(const tern_chat *chat, tern_chat_info *info);
/* A system message: only before the first user message (TERN_ERR_STATE). */
TERN_API tern_status tern_chat_add_system(tern_chat *chat, const char *content, size_t len);
/* The number of tokens the session holds before the first user message (BOS
 * and the system prompt): what a context shift keeps. */
TERN_API tern_status tern_chat_prefix_tokens(const tern_chat *chat, size_t *n_tokens);
/* The user's next message. *tokens (*n_tokens ids, owned by the chat, valid
 * until its next call) is what to feed next: the whole prompt for the first
 * message (BOS as tern_chat_tokenize with start_of_session), afterwards the
 * rest of the previous assistant turn and this message, ending with the
 * assistant header. TERN_ERR_STATE while a reply is awaited. */
TERN_API tern_status tern_chat_add_user(tern_chat *chat, const char *content, size_t len,
                                        const int32_t **tokens, size_t *n_tokens);
/* The model's reply to the last user message as generated (its text, without
 * the end-of-turn text). end_of_turn_in_session: nonzero when the token that
 * ended the turn (end_of_turn_token) was fed to the session -- or will be,
 * ahead of the next message's tokens -- so the next delta does not repeat
 * it. TERN_ERR_STATE when no reply is awaited. */
TERN_API tern_status tern_chat_add_reply(tern_chat *chat, const char *content, size_t len,
                                         int end_of_turn_in_session);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* TERN_TERN_H */
