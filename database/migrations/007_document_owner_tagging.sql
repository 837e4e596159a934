-- 007: who decided each document's owner, so a v1 knowledge base can be tagged by agent
-- (migration guide, phase 1: "Tagger documents existants par agent").
-- v1's `documents` had no agent_owner: 001 adds it and every existing row gets the default
-- 'shared', which says nothing about the row. `owner_tagged_by` records who set the owner:
--   'ingest'     ingested from a specialist's folder (`chatbot ingest --agent ...`)
--   'classifier' `chatbot tag-documents`, with the classifier's confidence
--   'manual'     `chatbot tag-documents --agent ...`
--   NULL         nobody yet: a row written by v1, still to tag.
-- Additive and idempotent: safe to run again, safe to paste into Supabase's SQL editor.

alter table documents add column if not exists owner_tagged_by text;
alter table documents add column if not exists owner_confidence real;
alter table documents add column if not exists owner_tagged_at timestamptz;

do $$
begin
  if not exists (select 1 from pg_constraint where conname = 'documents_owner_tagged_by_check') then
    alter table documents add constraint documents_owner_tagged_by_check
      check (owner_tagged_by is null or owner_tagged_by in ('ingest', 'classifier', 'manual'));
  end if;
end
$$;

-- Rows v2 ingested before this migration: their owner is the folder they came from (v2's
-- ingestion always writes its chunker into metadata; v1 never did).
update documents
   set owner_tagged_by = 'ingest'
 where owner_tagged_by is null
   and metadata ? 'chunker';

create index if not exists documents_untagged_idx on documents (id) where owner_tagged_by is null;
