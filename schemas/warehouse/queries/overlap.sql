-- overlap: the audiences of titles a and b over the windows in [from, to):
-- distinct viewers of each, of both, and the Jaccard index |A ∩ B| / |A ∪ B|,
-- exact, from the rows' profile hashes.
SELECT
    @a AS a,
    @b AS b,
    length(sa) AS viewers_a,
    length(sb) AS viewers_b,
    length(arrayIntersect(sa, sb)) AS viewers_both,
    if(viewers_a + viewers_b = viewers_both, 0, viewers_both / (viewers_a + viewers_b - viewers_both)) AS jaccard,
    if(viewers_a = 0, 0, viewers_both / viewers_a) AS a_also_b,
    if(viewers_b = 0, 0, viewers_both / viewers_b) AS b_also_a
FROM
(
    SELECT
        groupUniqArrayArrayIf(h, t = @a) AS sa,
        groupUniqArrayArrayIf(h, t = @b) AS sb
    FROM
    (
        SELECT title_id AS t, viewer_hashes AS h
        FROM playback_minute FINAL
        WHERE window_start >= @from AND window_start < @to AND title_id IN (@a, @b)
        {{- if .has_country}} AND country = @country{{end}}
    )
)
