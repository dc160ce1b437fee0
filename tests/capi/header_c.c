/* tern.h compiles as strict C (this file is built as C99 and as C11 with
 * -pedantic-errors) and declares what the docs say. */
#include <tern/tern.h>

/* Every declaration is usable from C: take each function's address. */
typedef void (*tern_fn)(void);
static const tern_fn kFunctions[] = {
    (tern_fn)tern_version,
    (tern_fn)tern_last_error,
    (tern_fn)tern_status_name,
    (tern_fn)tern_model_options_init,
    (tern_fn)tern_model_open,
    (tern_fn)tern_model_free,
    (tern_fn)tern_model_get_info,
    (tern_fn)tern_model_describe,
    (tern_fn)tern_model_kv_usage,
    (tern_fn)tern_tokenize,
    (tern_fn)tern_token_to_piece,
    (tern_fn)tern_detokenize,
    (tern_fn)tern_token_is_eog,
    (tern_fn)tern_session_create,
    (tern_fn)tern_session_fork,
    (tern_fn)tern_session_truncate,
    (tern_fn)tern_session_free,
    (tern_fn)tern_session_position,
    (tern_fn)tern_session_tokens,
    (tern_fn)tern_forward,
    (tern_fn)tern_decode,
    (tern_fn)tern_session_logits,
    (tern_fn)tern_sampler_params_init,
    (tern_fn)tern_sampler_create,
    (tern_fn)tern_sampler_create_vocab,
    (tern_fn)tern_sampler_clone,
    (tern_fn)tern_sampler_free,
    (tern_fn)tern_sampler_seed,
    (tern_fn)tern_sampler_sample,
    (tern_fn)tern_sampler_accept,
    (tern_fn)tern_sampler_reset,
    (tern_fn)tern_chat_template,
    (tern_fn)tern_chat_apply_template,
    (tern_fn)tern_chat_tokenize,
    (tern_fn)tern_detokenizer_create,
    (tern_fn)tern_detokenizer_push,
    (tern_fn)tern_detokenizer_flush,
    (tern_fn)tern_detokenizer_free,
};

int tern_header_c_check(void) {
  tern_model_options o;
  tern_sampler_params p;
  tern_batch_item item = {0};
  tern_chat_message msg = {"user", "hi"};
  tern_model_options_init(&o);
  tern_sampler_params_init(&p);
  (void)item;
  (void)msg;
  return (int)(sizeof(kFunctions) / sizeof(kFunctions[0])) + (p.seed == TERN_SEED_RANDOM);
}
