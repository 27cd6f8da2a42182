using System;
using System.Collections.Generic;
using RwSplit.Routing;

namespace RwSplit.PostgreSql;

/// <summary>The body scan: the tokens of one statement after its head, for function calls and write or pin signals.</summary>
internal static partial class PgStatementClassifier
{
    /// <summary>Walks the tokens of one statement after its head, collecting function calls and write or pin signals.</summary>
    private struct BodyScan
    {
        private const int TrackedDepth = 64;
        private const int MaxLookahead = 256;

        private readonly ScanMode mode;
        private readonly bool createRoutine;
        private int depth;
        private int beginDepth;
        private bool unbalanced;

        // Bit (depth - 1) set: the parenthesis open at that depth belongs to a function call or a subquery, so a name
        // right after its closing parenthesis is an alias (generate_series(1, 3) g(i)), not a call.
        private ulong callOrSubqueryParens;
        private bool lastCloseWasCallOrSubquery;

        // The token before the current (possibly schema-qualified) name, and whether the name was qualified.
        private Token nameContext;

        // The token before nameContext: FROM in FROM t x(a, b).
        private Token tableContext;
        private bool nameQualified;
        private bool nameFollowsCallOrSubquery;

        private bool copyFrom;
        private bool copyToStdout;
        private bool copyToFile;
        private bool copyAfterTo;

        private StatementKind kind;
        private string? kindDetail;
        private string? pinDetail;

        public BodyScan(ScanMode mode, bool createRoutine)
        {
            this.mode = mode;
            this.createRoutine = createRoutine;
            kind = StatementKind.Read;
        }

        private readonly bool CollectsFunctions => mode is ScanMode.Query or ScanMode.Copy or ScanMode.Dml;

        private readonly bool IsQuery => mode is ScanMode.Query or ScanMode.Copy;

        public void Run(ref Lexer lexer, Token first, bool firstIsPending, ref List<string>? functions)
        {
            Token previous = firstIsPending ? default : first;
            Token token = firstIsPending ? first : lexer.Next();
            while (true)
            {
                switch (token.Kind)
                {
                    case TokenKind.End:
                    case TokenKind.Error:
                        unbalanced |= depth != 0;
                        return;
                    case TokenKind.Semicolon:
                        // Like psql: a ';' inside parentheses (CREATE RULE) or a BEGIN ATOMIC body does not end the statement.
                        if (depth == 0 && beginDepth == 0)
                        {
                            return;
                        }

                        break;
                    case TokenKind.OpenParen:
                        OnOpenParen(lexer, previous, ref functions);
                        break;
                    case TokenKind.CloseParen:
                        if (depth == 0)
                        {
                            unbalanced = true;
                            lastCloseWasCallOrSubquery = false;
                        }
                        else
                        {
                            lastCloseWasCallOrSubquery = IsCallOrSubquery(depth);
                            SetCallOrSubquery(depth, false);
                            depth--;
                        }

                        break;
                    case TokenKind.Dot:
                        if (mode == ScanMode.Create && IsTemporarySchema(lexer, previous))
                        {
                            Raise(StatementKind.Write, TemporaryTable);
                            pinDetail ??= TemporaryTable;
                        }

                        break;
                    case TokenKind.QuotedIdentifier:
                    case TokenKind.Parameter:
                        OnName(previous);
                        break;
                    case TokenKind.Word:
                        OnName(previous);
                        OnWord(ref lexer, ref token, previous);
                        break;
                }

                previous = token;
                token = lexer.Next();
            }
        }

        public readonly Verdict Finish(Verdict head)
        {
            if (mode == ScanMode.Copy)
            {
                head = copyFrom ? Verdict.Write("COPY FROM")
                    : copyToFile ? Verdict.Write("COPY TO file")
                    : copyToStdout ? Verdict.Read(null)
                    : head;
            }

            StatementKind bodyKind = kind;
            string? bodyDetail = kindDetail;
            if (unbalanced && Rank(bodyKind) < Rank(StatementKind.Unknown))
            {
                bodyKind = StatementKind.Unknown;
                bodyDetail = UnbalancedParentheses;
            }

            if (pinDetail is not null && head.Effect != SessionEffect.Pin)
            {
                StatementKind pinnedKind = Rank(bodyKind) > Rank(head.Kind) ? bodyKind : head.Kind;
                return new Verdict(pinnedKind, SessionEffect.Pin, pinDetail);
            }

            // A pinned head keeps its own detail: the pin is what a log reader needs to see.
            return Rank(bodyKind) > Rank(head.Kind)
                ? head with { Kind = bodyKind, Detail = head.Effect == SessionEffect.Pin ? head.Detail : bodyDetail }
                : head;
        }

        private void Raise(StatementKind raised, string detail)
        {
            if (Rank(raised) > Rank(kind))
            {
                kind = raised;
                kindDetail = detail;
            }
        }

        private void OnName(Token previous)
        {
            if (previous.Kind == TokenKind.Dot)
            {
                nameQualified = true;
                return;
            }

            tableContext = nameContext;
            nameContext = previous;
            nameQualified = false;
            nameFollowsCallOrSubquery = previous.Kind == TokenKind.CloseParen && lastCloseWasCallOrSubquery;
        }

        private void OnOpenParen(in Lexer lexer, Token previous, ref List<string>? functions)
        {
            bool call = CollectsFunctions && IsFunctionCall(lexer, previous);
            if (call)
            {
                OnFunctionCall(lexer, previous, ref functions);
            }

            depth++;
            SetCallOrSubquery(depth, call);
        }

        private void OnWord(ref Lexer lexer, ref Token token, Token previous)
        {
            Keyword keyword = token.Keyword;
            if (createRoutine && depth == 0)
            {
                // CREATE FUNCTION ... BEGIN ATOMIC ...; ...; END: track the body like psql does.
                if (keyword == Keyword.Begin)
                {
                    beginDepth++;
                }
                else if (keyword == Keyword.Case && beginDepth > 0)
                {
                    beginDepth++;
                }
                else if (keyword == Keyword.End && beginDepth > 0)
                {
                    beginDepth--;
                }
            }

            if (!IsQuery || keyword == Keyword.None)
            {
                return;
            }

            switch (keyword)
            {
                case Keyword.Select:
                case Keyword.Values:
                case Keyword.With:
                case Keyword.Table:
                    if (previous.Kind == TokenKind.OpenParen)
                    {
                        SetCallOrSubquery(depth, true);
                    }

                    break;

                case Keyword.For:
                    OnFor(ref lexer, ref token);
                    break;

                case Keyword.Insert:
                case Keyword.Update:
                case Keyword.Delete:
                case Keyword.Merge:
                    if (previous.Kind != TokenKind.Dot)
                    {
                        Raise(StatementKind.Write, previous.Kind == TokenKind.OpenParen ? DataModifyingWith : WriteDetail(keyword));
                    }

                    break;

                case Keyword.Into:
                    if (previous.Keyword is not (Keyword.Insert or Keyword.Merge))
                    {
                        OnSelectInto(lexer);
                    }

                    break;

                case Keyword.From when mode == ScanMode.Copy && depth == 0:
                    copyFrom = true;
                    break;

                case Keyword.To when mode == ScanMode.Copy && depth == 0:
                {
                    Lexer peek = lexer;
                    if (peek.Next().Keyword == Keyword.Stdout)
                    {
                        copyToStdout = true;
                    }
                    else
                    {
                        copyToFile = true; // a server file or PROGRAM: a side effect on the server
                    }

                    copyAfterTo = true;
                    break;
                }
            }
        }

        /// <summary>FOR UPDATE / FOR NO KEY UPDATE / FOR SHARE / FOR KEY SHARE; any other FOR (substring) is no lock.</summary>
        private void OnFor(ref Lexer lexer, ref Token token)
        {
            Lexer peek = lexer;
            Token next = peek.Next();
            string? detail = null;
            switch (next.Keyword)
            {
                case Keyword.Update:
                    detail = "SELECT ... FOR UPDATE";
                    break;
                case Keyword.Share:
                    detail = "SELECT ... FOR SHARE";
                    break;
                case Keyword.No:
                    if (peek.Next().Keyword == Keyword.Key)
                    {
                        next = peek.Next();
                        detail = next.Keyword == Keyword.Update ? "SELECT ... FOR NO KEY UPDATE" : null;
                    }

                    break;
                case Keyword.Key:
                    next = peek.Next();
                    detail = next.Keyword == Keyword.Share ? "SELECT ... FOR KEY SHARE" : null;
                    break;
            }

            if (detail is not null)
            {
                Raise(StatementKind.Write, detail);
                lexer = peek; // consume the clause so its UPDATE is not taken for a statement
                token = next;
            }
        }

        /// <summary>SELECT ... INTO [TEMP | UNLOGGED] [TABLE] name creates a table.</summary>
        private void OnSelectInto(Lexer peek)
        {
            Raise(StatementKind.Write, SelectInto);
            Token token = peek.Next();
            if (token.Keyword is Keyword.Global or Keyword.Local)
            {
                token = peek.Next();
            }

            if (token.Keyword is Keyword.Temp or Keyword.Temporary)
            {
                pinDetail ??= TemporaryTable;
                return;
            }

            if (token.Keyword == Keyword.Unlogged)
            {
                token = peek.Next();
            }

            if (token.Keyword == Keyword.Table)
            {
                token = peek.Next();
            }

            Lexer afterName = peek;
            if (afterName.Next().Kind == TokenKind.Dot && IsTemporarySchema(peek, token))
            {
                pinDetail ??= TemporaryTable;
            }
        }

        private readonly bool IsFunctionCall(in Lexer lexer, Token name)
        {
            if (name.Kind == TokenKind.Word)
            {
                // SET is an unreserved word: "set(" outside UPDATE ... SET (a, b) = ... (a write anyway) is a user
                // function named set, which the catalog must judge.
                if (!nameQualified && name.Keyword >= Keyword.FirstSyntaxWord && name.Keyword != Keyword.Set)
                {
                    return false; // IN (...), EXISTS (...), CAST (...), OVER (...), numeric(10, 2) ...
                }
            }
            else if (name.Kind == TokenKind.Parameter)
            {
                // $1 is never a name; "@abs(" may be the prefix operator @ applied to abs(), so count it.
                if (lexer.Text(name)[0] == '$')
                {
                    return false;
                }
            }
            else if (name.Kind != TokenKind.QuotedIdentifier)
            {
                return false;
            }

            if (nameContext.Kind == TokenKind.Word && nameContext.Keyword is Keyword.As or Keyword.With or Keyword.Recursive or Keyword.Into)
            {
                return false; // AS t(a, b), WITH c(a, b) AS, INSERT INTO t (a, b)
            }

            if (nameFollowsCallOrSubquery)
            {
                return false; // generate_series(1, 3) g(i), (SELECT ...) s(a, b)
            }

            if (name.Keyword == Keyword.Repeatable && nameContext.Kind == TokenKind.CloseParen)
            {
                return false; // TABLESAMPLE BERNOULLI (5) REPEATABLE (7): the seed
            }

            if (nameContext.Kind == TokenKind.String)
            {
                return false; // interval '1' second(2): a field with its precision
            }

            if (nameContext.Kind == TokenKind.Word && lexer.Text(nameContext).Equals("tablesample", StringComparison.OrdinalIgnoreCase))
            {
                return false; // TABLESAMPLE SYSTEM (10): a sampling method, run on any server
            }

            if (IsPlainName(nameContext) && tableContext.Kind is TokenKind.Comma or TokenKind.Word
                && (tableContext.Kind == TokenKind.Comma || tableContext.Keyword is Keyword.From or Keyword.Join or Keyword.Only))
            {
                return false; // FROM t x(a, b): a table alias with a column list
            }

            if (mode == ScanMode.Copy && (depth == 0 || copyAfterTo))
            {
                return false; // COPY t (a, b) TO ..., COPY ... WITH (FORCE_QUOTE (a))
            }

            return nameContext.Kind != TokenKind.Comma || !IsCteColumnList(lexer);
        }

        /// <summary>An identifier that is no keyword the rules know (a table name, say).</summary>
        private static bool IsPlainName(Token token)
            => (token.Kind == TokenKind.Word && token.Keyword == Keyword.None) || token.Kind == TokenKind.QuotedIdentifier;

        /// <summary>After <c>, name (</c>: whether the parentheses are followed by <c>AS (</c>, making name a CTE.</summary>
        private static bool IsCteColumnList(Lexer peek)
        {
            int nesting = 1;
            for (int i = 0; i < MaxLookahead; i++)
            {
                Token token = peek.Next();
                switch (token.Kind)
                {
                    case TokenKind.End:
                    case TokenKind.Error:
                    case TokenKind.Semicolon:
                        return false;
                    case TokenKind.OpenParen:
                        nesting++;
                        break;
                    case TokenKind.CloseParen when --nesting == 0:
                    {
                        if (peek.Next().Keyword != Keyword.As)
                        {
                            return false;
                        }

                        Token body = peek.Next();
                        return body.Kind == TokenKind.OpenParen || body.Keyword is Keyword.Not or Keyword.Materialized;
                    }
                }
            }

            return false; // too long to tell: count it as a call, which is the safe side
        }

        private void OnFunctionCall(in Lexer lexer, Token name, ref List<string>? functions)
        {
            ReadOnlySpan<char> text = lexer.Text(name);
            Span<char> buffer = text.Length <= 128 ? stackalloc char[128] : new char[text.Length];
            ReadOnlySpan<char> folded = FoldName(name.Kind, text, buffer);
            switch (folded)
            {
                case "nextval":
                case "setval":
                    Raise(StatementKind.Write, SequenceAccess);
                    break;
                case "pg_advisory_lock":
                case "pg_advisory_lock_shared":
                case "pg_try_advisory_lock":
                case "pg_try_advisory_lock_shared":
                case "pg_advisory_unlock":
                case "pg_advisory_unlock_shared":
                case "pg_advisory_unlock_all":
                    // Session-level: held (or released) on this physical connection until it ends.
                    Raise(StatementKind.Write, AdvisoryLock);
                    pinDetail ??= AdvisoryLock;
                    break;
                case "pg_advisory_xact_lock":
                case "pg_advisory_xact_lock_shared":
                case "pg_try_advisory_xact_lock":
                case "pg_try_advisory_xact_lock_shared":
                    Raise(StatementKind.Write, AdvisoryLock);
                    break;
                case "set_config":
                    // SELECT set_config('app.tenant', ...) is a SET the replicas would never see (row-level security).
                    Raise(StatementKind.Unknown, SetConfig);
                    pinDetail ??= SetConfig;
                    break;
            }

            if (functions is not null)
            {
                foreach (string known in functions)
                {
                    if (folded.SequenceEqual(known))
                    {
                        return;
                    }
                }
            }

            (functions ??= new List<string>(4)).Add(folded.ToString());
        }

        /// <summary>
        /// The catalog spelling of a function name: unquoted names fold ASCII letters to lower case (as the server does
        /// for UTF-8 databases), quoted names keep their case with "" unescaped, parameter prefixes are dropped.
        /// </summary>
        private static ReadOnlySpan<char> FoldName(TokenKind kind, ReadOnlySpan<char> text, Span<char> buffer)
        {
            int length = 0;
            if (kind == TokenKind.QuotedIdentifier)
            {
                ReadOnlySpan<char> body = text[(text.IndexOf('"') + 1)..^1];
                for (int i = 0; i < body.Length; i++)
                {
                    buffer[length++] = body[i];
                    if (body[i] == '"')
                    {
                        i++; // "" stands for one "
                    }
                }

                return buffer[..length];
            }

            if (kind == TokenKind.Parameter)
            {
                text = text[1..];
            }

            foreach (char c in text)
            {
                buffer[length++] = c is >= 'A' and <= 'Z' ? (char)(c + ('a' - 'A')) : c;
            }

            return buffer[..length];
        }

        private readonly bool IsCallOrSubquery(int level)
            => level <= TrackedDepth && (callOrSubqueryParens & (1UL << (level - 1))) != 0;

        private void SetCallOrSubquery(int level, bool value)
        {
            if (level is < 1 or > TrackedDepth)
            {
                return; // deeper levels count as plain parentheses: names after them are listed, the safe side
            }

            ulong bit = 1UL << (level - 1);
            callOrSubqueryParens = value ? callOrSubqueryParens | bit : callOrSubqueryParens & ~bit;
        }

        private static bool IsTemporarySchema(in Lexer lexer, Token name)
        {
            if (name.Kind == TokenKind.Word)
            {
                ReadOnlySpan<char> text = lexer.Text(name);
                return text.Equals("pg_temp", StringComparison.OrdinalIgnoreCase)
                    || text.StartsWith("pg_temp_", StringComparison.OrdinalIgnoreCase);
            }

            if (name.Kind == TokenKind.QuotedIdentifier)
            {
                ReadOnlySpan<char> text = lexer.Text(name);
                return text.SequenceEqual("\"pg_temp\"") || text.StartsWith("\"pg_temp_");
            }

            return false;
        }
    }
}
