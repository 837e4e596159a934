-- 006: hand-off to a person, and the users' feedback on answers.
-- Additive and idempotent: safe to run again, safe on a database that already has part of it.
-- Paste it whole into Supabase's SQL editor, or let the backend apply it at start.
--
-- New message roles (messages.role has no check constraint, and gets none here: v1 keeps writing
-- to the same table during the A/B test):
--   'human_agent'  a reply written by a member of the team (agent is null);
--   'notice'       an automatic notice of the service (the acknowledgement of a message sent while
--                  the team has the conversation, the hand-back to the bot), never an answer.
-- Neither is 'assistant', so the guide's monitoring queries (step 6), which count
-- role = 'assistant' rows and read agent IS NULL as v1, are unchanged by them. A user's message
-- held for the team has agent null (query 2 only reads user rows with an agent) and carries
-- metadata.handoff_id.

-- Conversations: who has it, the bot or the team ------------------------------------------------
alter table conversations add column if not exists status text not null default 'active';
do $$
begin
  if not exists (select 1 from pg_constraint where conname = 'conversations_status_check') then
    alter table conversations add constraint conversations_status_check
      check (status in ('active', 'waiting_for_human'));
  end if;
end
$$;

-- Hand-offs: one row per escalation, open until the team gives the conversation back -----------
create table if not exists handoffs (
  id uuid primary key default gen_random_uuid(),
  conversation_id text not null references conversations (id) on delete cascade,
  opened_at timestamptz not null default now()
);
alter table handoffs add column if not exists user_id text;
-- open -> released
alter table handoffs add column if not exists status text not null default 'open';
-- Why: the router's reason, which router decided and how sure it was.
alter table handoffs add column if not exists reason text not null default '';
alter table handoffs add column if not exists router text;
alter table handoffs add column if not exists confidence double precision;
-- The user's message that was escalated, and the answer that told the user.
alter table handoffs add column if not exists user_message_id uuid;
alter table handoffs add column if not exists reply_id uuid;
-- The conversation's last messages when it was handed off (what the webhook sends).
alter table handoffs add column if not exists last_messages jsonb not null default '[]'::jsonb;
alter table handoffs add column if not exists released_at timestamptz;
alter table handoffs add column if not exists released_by text;
-- The webhook's delivery: disabled (no HANDOFF_WEBHOOK_URL) | pending | delivered | failed.
alter table handoffs add column if not exists webhook_status text not null default 'disabled';
alter table handoffs add column if not exists webhook_attempts integer not null default 0;
alter table handoffs add column if not exists webhook_http_status integer;
alter table handoffs add column if not exists webhook_error text;
alter table handoffs add column if not exists webhook_delivered_at timestamptz;
-- Set by the process delivering it, so another worker (or a restart) only retries a stale claim.
alter table handoffs add column if not exists webhook_claimed_at timestamptz;

do $$
begin
  if not exists (select 1 from pg_constraint where conname = 'handoffs_status_check') then
    alter table handoffs add constraint handoffs_status_check
      check (status in ('open', 'released'));
  end if;
  if not exists (select 1 from pg_constraint where conname = 'handoffs_webhook_status_check') then
    alter table handoffs add constraint handoffs_webhook_status_check
      check (webhook_status in ('disabled', 'pending', 'delivered', 'failed'));
  end if;
end
$$;
-- At most one open hand-off per conversation.
create unique index if not exists handoffs_one_open_idx on handoffs (conversation_id)
  where status = 'open';
create index if not exists handoffs_status_opened_idx on handoffs (status, opened_at desc);

-- Feedback: one rating per answer, by the conversation's owner; sending again replaces it ------
create table if not exists feedback (
  message_id uuid primary key references messages (id) on delete cascade,
  conversation_id text not null,
  user_id text not null,
  rating text not null,
  comment text,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
alter table feedback add column if not exists conversation_id text;
alter table feedback add column if not exists user_id text;
alter table feedback add column if not exists rating text;
alter table feedback add column if not exists comment text;
alter table feedback add column if not exists updated_at timestamptz not null default now();
do $$
begin
  if not exists (select 1 from pg_constraint where conname = 'feedback_rating_check') then
    alter table feedback add constraint feedback_rating_check check (rating in ('up', 'down'));
  end if;
end
$$;
create index if not exists feedback_created_idx on feedback (created_at);
