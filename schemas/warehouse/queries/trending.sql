-- trending: titles whose starts grew most in [from, to) against the
-- previous period of the same length, [from - (to - from), from).
-- Dedup: FINAL, filtered on sorting-key columns only (window_start,
-- country); the value columns are renamed in the inner query so that the
-- outer aggregates cannot be confused with them.
SELECT
    title_id,
    sumIf(s, cur) AS starts,
    sumIf(s, NOT cur) AS prev_starts,
    uniqExactArrayIf(h, cur) AS viewers,
    uniqExactArrayIf(h, NOT cur) AS prev_viewers,
    if(prev_starts = 0, NULL, starts / prev_starts) AS growth
FROM
(
    SELECT title_id, window_start >= @from AS cur, starts AS s, viewer_hashes AS h
    FROM playback_minute FINAL
    WHERE window_start >= @from - (@to - @from) AND window_start < @to
    {{- if .has_country}} AND country = @country{{end}}
)
GROUP BY title_id
HAVING starts >= @min_starts
ORDER BY prev_starts = 0 DESC, growth DESC, starts DESC, title_id
LIMIT @limit
