-- early-hit: for each title whose first start falls in [from, to), its
-- distinct viewers in the 72 hours from its first start (the first window
-- with a start, over all history before to), against the median of the
-- titles that share its first genre and whose 72 hours ended before to.
-- partial = 1 when the title's own 72 hours have not ended yet.
-- The median of an even number of titles is the mean of the middle two.
-- 259200 s = 72 h.
SELECT
    tupleElement(t, 1) AS title_id,
    genre,
    tupleElement(t, 2) AS first_start,
    tupleElement(t, 3) AS viewers_72h,
    genre_median,
    peers,
    if(peers = 0 OR genre_median = 0, NULL, viewers_72h / genre_median) AS ratio,
    first_start + 259200 > @to AS partial
FROM
(
    SELECT
        genre,
        groupArray((title_id, first_start, viewers_72h)) AS ts,
        arraySort(groupArrayIf(viewers_72h, first_start + 259200 <= @to)) AS done,
        length(done) AS peers,
        if(peers = 0, 0, (done[intDiv(peers + 1, 2)] + done[intDiv(peers + 2, 2)]) / 2) AS genre_median
    FROM
    (
        SELECT title_id, genres[1] AS genre, first_start, viewers_72h
        FROM
        (
            SELECT title_id, any(fs) AS first_start, uniqExactArray(h) AS viewers_72h
            FROM
            (
                SELECT title_id, window_start AS ws, viewer_hashes AS h
                FROM playback_minute FINAL
                WHERE window_start < @to
                {{- if .has_country}} AND country = @country{{end}}
            )
            ALL INNER JOIN
            (
                SELECT title_id, minIf(ws, s > 0) AS fs
                FROM
                (
                    SELECT title_id, window_start AS ws, starts AS s
                    FROM playback_minute FINAL
                    WHERE window_start < @to
                    {{- if .has_country}} AND country = @country{{end}}
                )
                GROUP BY title_id
                HAVING max(s) > 0
            ) USING title_id
            WHERE ws >= fs AND ws < fs + 259200
            GROUP BY title_id
        )
        ALL INNER JOIN (SELECT title_id, genres FROM titles FINAL WHERE notEmpty(genres)) USING title_id
    )
    GROUP BY genre
)
ARRAY JOIN ts AS t
WHERE first_start >= @from
ORDER BY ratio DESC, viewers_72h DESC, title_id
LIMIT @limit
