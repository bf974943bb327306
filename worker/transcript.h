/* transcript.h — an attempt's conversation as it goes into the log (DESIGN.md §5: "Conversation
 * history is stored per attempt in `messages`, in a provider-neutral form").
 *
 * attempt.succeeded and attempt.failed carry the attempt's whole conversation, every message the
 * worker kept (not only what the last request could fit in the window): `messages`, or
 * `messages_ref` when a blob holds it (above worker.transcript_inline_bytes, 256 KiB, written
 * before the event), and the
 * materializer projects it into the `messages` table (sql/0008_messages.sql). Form of one message:
 *   {"role": "system"|"user"|"assistant"|"tool", "content": text or null,
 *    "tool_calls": [{"id", "name", "arguments": the arguments' JSON text}]   (assistant, if any)
 *    "tool_call_id": "..."}                                                  (tool)
 * Pure; no I/O. */
#ifndef LH_WORKER_TRANSCRIPT_H
#define LH_WORKER_TRANSCRIPT_H

#include <jansson.h>
#include <stddef.h>

#include "llm.h"

/* Bytes of a transcript carried inline in an event when no blob store takes it (Kafka's default
 * message limit is 1 MB; the rest of the event must fit too). */
#define LH_TRANSCRIPT_INLINE_MAX (256 * 1024)

/* msgs[0..n) as a JSON array of the form above, then, when final is not NULL, the model's final
 * answer as one more assistant message (the worker keeps it as the output, not in msgs). When
 * max_bytes > 0 and the compact encoding would be longer, the oldest messages are left out until
 * it fits (the newest message is always kept, whatever its size) and *ret_dropped (may be NULL)
 * counts them; 0 otherwise. New reference; NULL only on out-of-memory. */
json_t *lh_transcript_json(const lh_llm_message_t *msgs, size_t n, const char *final,
			   size_t max_bytes, size_t *ret_dropped);

#endif
