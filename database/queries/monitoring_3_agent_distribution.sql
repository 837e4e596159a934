-- 3. Distribution agents v2
SELECT
  agent,
  COUNT(*) as count,
  ROUND(100.0 * COUNT(*) / SUM(COUNT(*)) OVER (), 2) as percentage
FROM messages
WHERE created_at > NOW() - INTERVAL '24 hours'
  AND role = 'assistant'
  AND agent IS NOT NULL
GROUP BY agent;
