-- 1. Volume par version
SELECT
  CASE
    WHEN agent IS NULL THEN 'v1'
    ELSE 'v2'
  END as version,
  COUNT(*) as message_count,
  COUNT(DISTINCT conversation_id) as conversations
FROM messages
WHERE created_at > NOW() - INTERVAL '24 hours'
  AND role = 'assistant'
GROUP BY version;
