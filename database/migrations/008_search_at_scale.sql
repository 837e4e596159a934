-- 008: the hybrid search at 100,000 chunks (measured by `python -m bench.retrieval`).
-- Additive and idempotent: paste it whole into Supabase's SQL editor, or let the backend apply
-- it at start. On a large table the three index builds take a while (about 30 s at 100k
-- chunks here); searches keep working meanwhile, ingestion waits.
--
-- 1. One HNSW index per route scope. Every turn searches the three scopes of
--    nodes/retrieve.py (audrey + shared, carole + shared, shared). Through the one index of all
--    chunks, an agent filter makes HNSW walk past every chunk of the other owner first: at
--    100k chunks a `shared` search (10% of rows) for a question about reels skipped 2,000+
--    rows and took ~40 ms. A partial index per scope has only that scope's rows, so the walk
--    never filters. The index of all chunks stays for any other set of owners.
create index if not exists documents_embedding_audrey_scope_hnsw_idx
  on documents using hnsw (embedding vector_cosine_ops) with (m = 16, ef_construction = 200)
  where agent_owner in ('audrey', 'shared');
create index if not exists documents_embedding_carole_scope_hnsw_idx
  on documents using hnsw (embedding vector_cosine_ops) with (m = 16, ef_construction = 200)
  where agent_owner in ('carole', 'shared');
create index if not exists documents_embedding_shared_hnsw_idx
  on documents using hnsw (embedding vector_cosine_ops) with (m = 16, ef_construction = 200)
  where agent_owner = 'shared';

-- 2. Full text that stays bounded. 001 ORs every word of the question and ranks every chunk
--    that has any of them: at 100k chunks a question with "comment" or "email" matched half the
--    table and took 1-4 s. Ranking is paid per matching row, so the rows to rank are chosen by
--    how rare the words are (from the planner's statistics on `fts`, kept by ANALYZE):
--    - while all the words together are estimated to match at most `budget` rows (always the
--      case on a small base, where this is exactly 001's search), every word selects;
--    - else the rarest words whose estimated matches add up to at most `budget`;
--    - else (each word alone is too common) chunks holding two of the three rarest words.
--    The rows selected are then ranked against every word, as before; `budget` also caps them.
--    A word counts once whether it matches as typed or accent-folded.
create or replace function chatbot_text_queries(
  query_text text,
  budget integer,
  out rank_query tsquery,
  out match_query tsquery
)
language sql stable parallel safe
as $$
  with lexemes as (
    select l.lexeme, p.pos
    from unnest(to_tsvector('french', query_text)) l, unnest(l.positions) as p(pos)
    union
    select l.lexeme, p.pos
    from unnest(to_tsvector('french', chatbot_fold(query_text))) l, unnest(l.positions) as p(pos)
  ),
  words as materialized (
    select distinct array_agg(lexeme order by lexeme) as forms from lexemes group by pos
  ),
  stats as materialized (
    -- tsvector statistics: the most common lexemes, their frequencies, then min and max. Read
    -- once (materialised): decoding them is the costly part of this function.
    select s.most_common_elems::text::text[] as elems, s.most_common_elem_freqs as freqs
    from pg_stats s
    join pg_class c on c.relname = s.tablename
    join pg_namespace n on n.oid = c.relnamespace and n.nspname = s.schemaname
    where c.oid = 'documents'::regclass and s.attname = 'fts' and exists (select from words)
  ),
  scored as materialized (
    select
      w.forms,
      -- A word the statistics do not list is rarer than the least common one they list;
      -- null when there are no statistics at all.
      coalesce(
        (select max(s.freqs[array_position(s.elems, f)]) from stats s, unnest(w.forms) f),
        (select s.freqs[array_length(s.freqs, 1) - 1] from stats s)
      ) as frequency,
      '(' || (
        select string_agg(
          '''' || replace(replace(f, '\', '\\'), '''', '''''') || '''', ' | ' order by f
        ) from unnest(w.forms) f
      ) || ')' as query
    from words w
  ),
  ordered as (
    select
      o.*,
      row_number() over (order by o.frequency nulls first, o.forms) as rarity,
      sum(o.frequency) over (order by o.frequency nulls first, o.forms) as cumulative,
      (select greatest(c.reltuples, 0) from pg_class c where c.oid = 'documents'::regclass) as n
    from scored o
  ),
  plan as (
    select
      string_agg(o.query, ' | ' order by o.rarity) as all_words,
      -- No statistics yet (a new or small base), or few enough rows: every word selects.
      bool_or(o.frequency is null) or max(o.n) * least(1, sum(o.frequency)) <= budget
        as every_word,
      string_agg(o.query, ' | ' order by o.rarity) filter (where o.n * o.cumulative <= budget)
        as rare_words,
      count(*) as word_count,
      array_agg(o.query order by o.rarity) filter (where o.rarity <= 3) as rarest
    from ordered o
  )
  select
    p.all_words::tsquery,
    case
      when p.all_words is null then null
      when p.every_word then p.all_words::tsquery
      when p.rare_words is not null then p.rare_words::tsquery
      when p.word_count = 1 then p.all_words::tsquery
      when p.word_count = 2 then (p.rarest[1] || ' & ' || p.rarest[2])::tsquery
      else (
        '(' || p.rarest[1] || ' & ' || p.rarest[2] || ') | (' || p.rarest[1] || ' & '
        || p.rarest[3] || ') | (' || p.rarest[2] || ' & ' || p.rarest[3] || ')'
      )::tsquery
    end
  from plan p
$$;

-- 3. The search, with its knobs as arguments (core/settings.py SEARCH_*, passed by
--    store/documents.py). The old signature is dropped first: the new one adds arguments with
--    defaults, and both at once would make a five-argument call ambiguous.
drop function if exists match_documents_hybrid(vector, text, text[], integer, integer, integer);

create or replace function match_documents_hybrid(
  query_embedding vector,
  query_text text,
  agents text[],
  match_count integer default 8,
  candidate_count integer default 40,
  rrf_k integer default 60,
  ef_search integer default 40,
  max_scan_tuples integer default 20000,
  text_budget integer default 500
)
returns table (
  id bigint,
  content text,
  metadata jsonb,
  agent_owner text,
  source text,
  similarity double precision,
  vector_rank integer,
  text_rank integer,
  score double precision
)
language plpgsql stable
-- Saved on entry and restored on exit: what the body sets below stays inside this call.
set hnsw.iterative_scan = 'relaxed_order'
set hnsw.ef_search = 40
set hnsw.max_scan_tuples = 20000
-- Plan each call with its real owners, so the planner can pick that scope's partial index.
set plan_cache_mode = 'force_custom_plan'
as $$
#variable_conflict use_column
declare
  queries record;
begin
  -- HNSW returns at most ef_search rows per pass: never fewer than the candidates wanted.
  perform set_config('hnsw.ef_search', least(1000, greatest(ef_search, candidate_count))::text, true);
  perform set_config('hnsw.max_scan_tuples', max_scan_tuples::text, true);
  select * into queries from chatbot_text_queries(query_text, text_budget);
  return query
  with vector_hits as materialized (
    select d.id, d.embedding <=> query_embedding as distance
    from documents d
    where d.agent_owner = any (agents) and d.embedding is not null
    order by d.embedding <=> query_embedding
    limit candidate_count
  ),
  vector_ranked as (
    select v.id, v.distance, row_number() over (order by v.distance) as rnk from vector_hits v
  ),
  text_selected as materialized (
    select d.id, d.fts
    from documents d
    where queries.match_query is not null
      and d.agent_owner = any (agents)
      and d.fts @@ queries.match_query
    limit greatest(text_budget, candidate_count)
  ),
  text_hits as (
    select t.id, ts_rank_cd(t.fts, queries.rank_query) as rank_score
    from text_selected t
    order by rank_score desc, t.id
    limit candidate_count
  ),
  text_ranked as (
    select h.id, row_number() over (order by h.rank_score desc, h.id) as rnk from text_hits h
  ),
  fused as (
    select
      coalesce(v.id, t.id) as id,
      v.rnk as vector_rank,
      t.rnk as text_rank,
      coalesce(1.0 / (rrf_k + v.rnk), 0) + coalesce(1.0 / (rrf_k + t.rnk), 0) as score
    from vector_ranked v
    full outer join text_ranked t on t.id = v.id
  )
  select
    d.id, d.content, d.metadata, d.agent_owner, d.source,
    1 - (d.embedding <=> query_embedding) as similarity,
    f.vector_rank::integer, f.text_rank::integer, f.score::double precision
  from fused f
  join documents d on d.id = f.id
  order by f.score desc, f.vector_rank nulls last
  limit match_count;
end
$$;
