-- 005: streams that resume, and answers that survive a crash. Additive and idempotent.

-- A user row knows the id its answer will carry, from the moment it is stored: a client that
-- lost its stream resumes with that id (`GET /api/chat/stream/{message_id}`), even while the
-- message still waits for its turn.
alter table messages add column if not exists reply_id uuid;
create unique index if not exists messages_reply_id_idx on messages (reply_id)
  where reply_id is not null;

-- The answer being streamed, flushed every second or so: another worker can resume the stream
-- from it, and the start-up sweep keeps it as an `interrupted` answer if the worker died.
-- Removed in the same transaction that saves the final assistant message.
create table if not exists answer_drafts (
  message_id uuid primary key,
  user_message_id uuid not null,
  conversation_id text not null,
  agent text,
  route jsonb,
  sources jsonb,
  degraded boolean not null default false,
  content text not null default '',
  model text,
  updated_at timestamptz not null default now()
);
create index if not exists answer_drafts_user_message_idx on answer_drafts (user_message_id);
