-- funnel: the browse funnel per row and artwork over the windows in
-- [from, to): impressions and selects from browse events, plays from
-- playback starts launched from that row and artwork.
SELECT
    row,
    artwork_id,
    impressions,
    selects,
    plays,
    if(impressions = 0, 0, selects / impressions) AS select_rate,
    if(selects = 0, 0, plays / selects) AS play_rate,
    if(impressions = 0, 0, plays / impressions) AS conversion
FROM
(
    SELECT row, artwork_id, sum(i) AS impressions, sum(s) AS selects, sum(p) AS plays
    FROM
    (
        SELECT row, artwork_id, impressions AS i, selects AS s, plays AS p
        FROM funnel_minute FINAL
        WHERE window_start >= @from AND window_start < @to
        {{- if .has_row}} AND row = @row{{end}}
    )
    GROUP BY row, artwork_id
)
ORDER BY impressions DESC, plays DESC, row, artwork_id
LIMIT @limit
