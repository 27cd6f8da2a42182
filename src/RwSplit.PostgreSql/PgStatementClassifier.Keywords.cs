using System;
using System.Collections.Generic;
using RwSplit.Routing;

namespace RwSplit.PostgreSql;

/// <summary>The keyword table: the words the rules look at, found by an open-addressing hash lookup.</summary>
internal static partial class PgStatementClassifier
{
    /// <summary>The keyword a word spells (ASCII letters in any case), or <see cref="Keyword.None"/>.</summary>
    private static Keyword LookupKeyword(ReadOnlySpan<char> word) => KeywordTable.Instance.Find(word);

    /// <summary>
    /// Keywords in an open-addressing table built once. Most words of a statement are table and column names: they hash
    /// to an empty slot and cost a few instructions, which matters because every word of every statement is looked up.
    /// </summary>
    private sealed class KeywordTable
    {
        private const int Size = 1024; // a power of two, about five times the number of keywords
        private const int Mask = Size - 1;

        // Declared before Instance: static initializers run in text order.
        private static readonly (string Text, Keyword Keyword)[] Entries =
        [
            ("ABORT", Keyword.Abort),
            ("ALTER", Keyword.Alter),
            ("BEGIN", Keyword.Begin),
            ("CALL", Keyword.Call),
            ("CHARACTERISTICS", Keyword.Characteristics),
            ("CHECKPOINT", Keyword.Checkpoint),
            ("CLOSE", Keyword.Close),
            ("CLUSTER", Keyword.Cluster),
            ("COMMENT", Keyword.Comment),
            ("COMMIT", Keyword.Commit),
            ("CONSTRAINTS", Keyword.Constraints),
            ("COPY", Keyword.Copy),
            ("DEALLOCATE", Keyword.Deallocate),
            ("DECLARE", Keyword.Declare),
            ("DISCARD", Keyword.Discard),
            ("DROP", Keyword.Drop),
            ("EXECUTE", Keyword.Execute),
            ("EXPLAIN", Keyword.Explain),
            ("FUNCTION", Keyword.Function),
            ("GLOBAL", Keyword.Global),
            ("IMPORT", Keyword.Import),
            ("KEY", Keyword.Key),
            ("LISTEN", Keyword.Listen),
            ("LOCAL", Keyword.Local),
            ("LOCK", Keyword.Lock),
            ("MOVE", Keyword.Move),
            ("NO", Keyword.No),
            ("NOTIFY", Keyword.Notify),
            ("PREPARE", Keyword.Prepare),
            ("PROCEDURE", Keyword.Procedure),
            ("REASSIGN", Keyword.Reassign),
            ("RECURSIVE", Keyword.Recursive),
            ("REFRESH", Keyword.Refresh),
            ("REINDEX", Keyword.Reindex),
            ("RELEASE", Keyword.Release),
            ("REPEATABLE", Keyword.Repeatable),
            ("RESET", Keyword.Reset),
            ("REVOKE", Keyword.Revoke),
            ("ROLLBACK", Keyword.Rollback),
            ("SAVEPOINT", Keyword.Savepoint),
            ("SECURITY", Keyword.Security),
            ("SERIALIZABLE", Keyword.Serializable),
            ("SESSION", Keyword.Session),
            ("SHARE", Keyword.Share),
            ("SHOW", Keyword.Show),
            ("START", Keyword.Start),
            ("STDOUT", Keyword.Stdout),
            ("TEMP", Keyword.Temp),
            ("TEMPORARY", Keyword.Temporary),
            ("TRANSACTION", Keyword.Transaction),
            ("TRUNCATE", Keyword.Truncate),
            ("UNLISTEN", Keyword.Unlisten),
            ("UNLOGGED", Keyword.Unlogged),
            ("VACUUM", Keyword.Vacuum),
            ("VERBOSE", Keyword.Verbose),
            ("ALL", Keyword.All),
            ("ANALYSE", Keyword.Analyse),
            ("ANALYZE", Keyword.Analyze),
            ("AND", Keyword.And),
            ("ANY", Keyword.Any),
            ("ARRAY", Keyword.Array),
            ("AS", Keyword.As),
            ("ASC", Keyword.Asc),
            ("BETWEEN", Keyword.Between),
            ("BIGINT", Keyword.Bigint),
            ("BIT", Keyword.Bit),
            ("BOOLEAN", Keyword.Boolean),
            ("BOTH", Keyword.Both),
            ("BY", Keyword.By),
            ("CASE", Keyword.Case),
            ("CAST", Keyword.Cast),
            ("CHAR", Keyword.Char),
            ("CHARACTER", Keyword.Character),
            ("CHECK", Keyword.Check),
            ("COALESCE", Keyword.Coalesce),
            ("COLLATE", Keyword.Collate),
            ("COLUMNS", Keyword.Columns),
            ("CONFLICT", Keyword.Conflict),
            ("CONSTRAINT", Keyword.Constraint),
            ("CREATE", Keyword.Create),
            ("CUBE", Keyword.Cube),
            ("CURRENT_CATALOG", Keyword.CurrentCatalog),
            ("CURRENT_DATE", Keyword.CurrentDate),
            ("CURRENT_ROLE", Keyword.CurrentRole),
            ("CURRENT_TIME", Keyword.CurrentTime),
            ("CURRENT_TIMESTAMP", Keyword.CurrentTimestamp),
            ("CURRENT_USER", Keyword.CurrentUser),
            ("DEC", Keyword.Dec),
            ("DECIMAL", Keyword.Decimal),
            ("DEFAULT", Keyword.Default),
            ("DELETE", Keyword.Delete),
            ("DESC", Keyword.Desc),
            ("DISTINCT", Keyword.Distinct),
            ("DO", Keyword.Do),
            ("ELSE", Keyword.Else),
            ("END", Keyword.End),
            ("ESCAPE", Keyword.Escape),
            ("EXCEPT", Keyword.Except),
            ("EXISTS", Keyword.Exists),
            ("EXTRACT", Keyword.Extract),
            ("FALSE", Keyword.False),
            ("FETCH", Keyword.Fetch),
            ("FILTER", Keyword.Filter),
            ("FLOAT", Keyword.Float),
            ("FOR", Keyword.For),
            ("FOREIGN", Keyword.Foreign),
            ("FROM", Keyword.From),
            ("GRANT", Keyword.Grant),
            ("GREATEST", Keyword.Greatest),
            ("GROUP", Keyword.Group),
            ("GROUPING", Keyword.Grouping),
            ("HAVING", Keyword.Having),
            ("ILIKE", Keyword.Ilike),
            ("IN", Keyword.In),
            ("INSERT", Keyword.Insert),
            ("INT", Keyword.Int),
            ("INTEGER", Keyword.Integer),
            ("INTERSECT", Keyword.Intersect),
            ("INTERVAL", Keyword.Interval),
            ("INTO", Keyword.Into),
            ("IS", Keyword.Is),
            ("JOIN", Keyword.Join),
            ("JSON", Keyword.Json),
            ("JSON_ARRAY", Keyword.JsonArray),
            ("JSON_ARRAYAGG", Keyword.JsonArrayAgg),
            ("JSON_EXISTS", Keyword.JsonExists),
            ("JSON_OBJECT", Keyword.JsonObject),
            ("JSON_OBJECTAGG", Keyword.JsonObjectAgg),
            ("JSON_QUERY", Keyword.JsonQuery),
            ("JSON_SCALAR", Keyword.JsonScalar),
            ("JSON_SERIALIZE", Keyword.JsonSerialize),
            ("JSON_TABLE", Keyword.JsonTable),
            ("JSON_VALUE", Keyword.JsonValue),
            ("LATERAL", Keyword.Lateral),
            ("LEADING", Keyword.Leading),
            ("LEAST", Keyword.Least),
            ("LIKE", Keyword.Like),
            ("LIMIT", Keyword.Limit),
            ("LOCALTIME", Keyword.Localtime),
            ("LOCALTIMESTAMP", Keyword.Localtimestamp),
            ("MATERIALIZED", Keyword.Materialized),
            ("MERGE", Keyword.Merge),
            ("MERGE_ACTION", Keyword.MergeAction),
            ("NATIONAL", Keyword.National),
            ("NCHAR", Keyword.Nchar),
            ("NORMALIZE", Keyword.Normalize),
            ("NOT", Keyword.Not),
            ("NULL", Keyword.Null),
            ("NULLIF", Keyword.Nullif),
            ("NUMERIC", Keyword.Numeric),
            ("OFFSET", Keyword.Offset),
            ("ON", Keyword.On),
            ("ONLY", Keyword.Only),
            ("OPERATOR", Keyword.Operator),
            ("OR", Keyword.Or),
            ("ORDER", Keyword.Order),
            ("OVER", Keyword.Over),
            ("OVERLAPS", Keyword.Overlaps),
            ("OVERLAY", Keyword.Overlay),
            ("PARTITION", Keyword.Partition),
            ("PLACING", Keyword.Placing),
            ("POSITION", Keyword.Position),
            ("PRECISION", Keyword.Precision),
            ("PRIMARY", Keyword.Primary),
            ("REAL", Keyword.Real),
            ("REFERENCES", Keyword.References),
            ("RETURNING", Keyword.Returning),
            ("ROLLUP", Keyword.Rollup),
            ("ROW", Keyword.Row),
            ("SELECT", Keyword.Select),
            ("SESSION_USER", Keyword.SessionUser),
            ("SET", Keyword.Set),
            ("SETOF", Keyword.Setof),
            ("SETS", Keyword.Sets),
            ("SIMILAR", Keyword.Similar),
            ("SMALLINT", Keyword.Smallint),
            ("SOME", Keyword.Some),
            ("SUBSTRING", Keyword.Substring),
            ("SYSTEM_USER", Keyword.SystemUser),
            ("TABLE", Keyword.Table),
            ("THEN", Keyword.Then),
            ("TIME", Keyword.Time),
            ("TIMESTAMP", Keyword.Timestamp),
            ("TO", Keyword.To),
            ("TRAILING", Keyword.Trailing),
            ("TREAT", Keyword.Treat),
            ("TRIM", Keyword.Trim),
            ("TRUE", Keyword.True),
            ("UNION", Keyword.Union),
            ("UNIQUE", Keyword.Unique),
            ("UPDATE", Keyword.Update),
            ("USER", Keyword.User),
            ("USING", Keyword.Using),
            ("VALUES", Keyword.Values),
            ("VARCHAR", Keyword.Varchar),
            ("VARIADIC", Keyword.Variadic),
            ("VARYING", Keyword.Varying),
            ("WHEN", Keyword.When),
            ("WHERE", Keyword.Where),
            ("WINDOW", Keyword.Window),
            ("WITH", Keyword.With),
            ("WITHIN", Keyword.Within),
            ("XMLATTRIBUTES", Keyword.XmlAttributes),
            ("XMLCONCAT", Keyword.XmlConcat),
            ("XMLELEMENT", Keyword.XmlElement),
            ("XMLEXISTS", Keyword.XmlExists),
            ("XMLFOREST", Keyword.XmlForest),
            ("XMLNAMESPACES", Keyword.XmlNamespaces),
            ("XMLPARSE", Keyword.XmlParse),
            ("XMLPI", Keyword.XmlPi),
            ("XMLROOT", Keyword.XmlRoot),
            ("XMLSERIALIZE", Keyword.XmlSerialize),
            ("XMLTABLE", Keyword.XmlTable),
            ("ZONE", Keyword.Zone),
        ];

        private readonly string?[] texts = new string?[Size];
        private readonly Keyword[] keywords = new Keyword[Size];

        private KeywordTable()
        {
            foreach ((string text, Keyword keyword) in Entries)
            {
                // Stored folded with | 0x20 ('_' becomes 0x7F), the folding Find applies to the word.
                string folded = string.Create(text.Length, text, static (span, source) =>
                {
                    for (int i = 0; i < span.Length; i++)
                    {
                        span[i] = (char)(source[i] | 0x20);
                    }
                });
                int slot = Hash(folded);
                while (texts[slot] is not null)
                {
                    slot = (slot + 1) & Mask;
                }

                texts[slot] = folded;
                keywords[slot] = keyword;
            }
        }

        public static KeywordTable Instance { get; } = new();

        public Keyword Find(ReadOnlySpan<char> word)
        {
            if (word.Length is < 2 or > MaxKeywordLength)
            {
                return Keyword.None;
            }

            for (int slot = Hash(word); ; slot = (slot + 1) & Mask)
            {
                string? text = texts[slot];
                if (text is null)
                {
                    return Keyword.None;
                }

                if (text.Length == word.Length && EqualsFolded(word, text))
                {
                    return keywords[slot];
                }
            }
        }

        // c | 0x20 folds ASCII letters to lower case and maps no other identifier character (digits, '_', '$', non-ASCII)
        // onto a keyword character, so comparing folded characters is an exact case-insensitive comparison here.
        private static bool EqualsFolded(ReadOnlySpan<char> word, string folded)
        {
            for (int i = 0; i < word.Length; i++)
            {
                if ((word[i] | 0x20) != folded[i])
                {
                    return false;
                }
            }

            return true;
        }

        private static int Hash(ReadOnlySpan<char> word)
        {
            uint hash = (uint)word.Length * 0x9E3779B1u;
            hash ^= (uint)(word[0] | 0x20) * 0x85EBCA77u;
            hash ^= (uint)(word[^1] | 0x20) * 0xC2B2AE3Du;
            hash ^= (uint)(word[word.Length >> 1] | 0x20) * 0x27D4EB2Fu;
            return (int)((hash ^ (hash >> 15)) & Mask);
        }
    }

    /// <summary>
    /// The words the rules look at. Members from <see cref="FirstSyntaxWord"/> on are never function names when
    /// followed by '(' unqualified: reserved words, SQL constructs written like calls (CAST, EXTRACT, COALESCE, which
    /// the server maps to fixed pg_catalog functions or to no function at all), type names with modifiers, and a few
    /// unreserved words that take a parenthesised list (FILTER, OVER, MATERIALIZED, ON CONFLICT).
    /// </summary>
    private enum Keyword : byte
    {
        None,

        // Unreserved words a user function could be named after.
        Abort,
        Alter,
        Begin,
        Call,
        Characteristics,
        Checkpoint,
        Close,
        Cluster,
        Comment,
        Commit,
        Constraints,
        Copy,
        Deallocate,
        Declare,
        Discard,
        Drop,
        Execute,
        Explain,
        Function,
        Global,
        Import,
        Key,
        Listen,
        Local,
        Lock,
        Move,
        No,
        Notify,
        Prepare,
        Procedure,
        Reassign,
        Recursive,
        Refresh,
        Reindex,
        Release,
        Repeatable,
        Reset,
        Revoke,
        Rollback,
        Savepoint,
        Security,
        Serializable,
        Session,
        Share,
        Show,
        Start,
        Stdout,
        Temp,
        Temporary,
        Transaction,
        Truncate,
        Unlisten,
        Unlogged,
        Vacuum,
        Verbose,

        // Never function names.
        All,
        Analyse,
        Analyze,
        And,
        Any,
        Array,
        As,
        Asc,
        Between,
        Bigint,
        Bit,
        Boolean,
        Both,
        By,
        Case,
        Cast,
        Char,
        Character,
        Check,
        Coalesce,
        Collate,
        Columns,
        Conflict,
        Constraint,
        Create,
        Cube,
        CurrentCatalog,
        CurrentDate,
        CurrentRole,
        CurrentTime,
        CurrentTimestamp,
        CurrentUser,
        Dec,
        Decimal,
        Default,
        Delete,
        Desc,
        Distinct,
        Do,
        Else,
        End,
        Escape,
        Except,
        Exists,
        Extract,
        False,
        Fetch,
        Filter,
        Float,
        For,
        Foreign,
        From,
        Grant,
        Greatest,
        Group,
        Grouping,
        Having,
        Ilike,
        In,
        Insert,
        Int,
        Integer,
        Intersect,
        Interval,
        Into,
        Is,
        Join,
        Json,
        JsonArray,
        JsonArrayAgg,
        JsonExists,
        JsonObject,
        JsonObjectAgg,
        JsonQuery,
        JsonScalar,
        JsonSerialize,
        JsonTable,
        JsonValue,
        Lateral,
        Leading,
        Least,
        Like,
        Limit,
        Localtime,
        Localtimestamp,
        Materialized,
        Merge,
        MergeAction,
        National,
        Nchar,
        Normalize,
        Not,
        Null,
        Nullif,
        Numeric,
        Offset,
        On,
        Only,
        Operator,
        Or,
        Order,
        Over,
        Overlaps,
        Overlay,
        Partition,
        Placing,
        Position,
        Precision,
        Primary,
        Real,
        References,
        Returning,
        Rollup,
        Row,
        Select,
        SessionUser,
        Set,
        Setof,
        Sets,
        Similar,
        Smallint,
        Some,
        Substring,
        SystemUser,
        Table,
        Then,
        Time,
        Timestamp,
        To,
        Trailing,
        Treat,
        Trim,
        True,
        Union,
        Unique,
        Update,
        User,
        Using,
        Values,
        Varchar,
        Variadic,
        Varying,
        When,
        Where,
        Window,
        With,
        Within,
        XmlAttributes,
        XmlConcat,
        XmlElement,
        XmlExists,
        XmlForest,
        XmlNamespaces,
        XmlParse,
        XmlPi,
        XmlRoot,
        XmlSerialize,
        XmlTable,
        Zone,

        FirstSyntaxWord = All,
    }
}
