-- 2. Performance v2 (temps de réponse)
SELECT
  m1.agent,
  AVG(EXTRACT(EPOCH FROM (m2.created_at - m1.created_at))) as avg_seconds,
  COUNT(*) as sample_size
FROM messages m1
JOIN messages m2 ON m1.conversation_id = m2.conversation_id
WHERE m1.role = 'user'
  AND m2.role = 'assistant'
  AND m2.created_at > m1.created_at
  AND m1.created_at > NOW() - INTERVAL '24 hours'
  AND m1.agent IS NOT NULL  -- v2 seulement
GROUP BY m1.agent;
