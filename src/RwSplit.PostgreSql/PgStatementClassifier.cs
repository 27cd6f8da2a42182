using System;
using System.Collections.Generic;
using RwSplit.Routing;

namespace RwSplit.PostgreSql;

/// <summary>
/// Classifies PostgreSQL command text for read/write routing with a small single-pass lexer and a few keyword rules.
/// It fails closed: whatever it cannot prove to be a read is <see cref="StatementKind.Unknown"/> or
/// <see cref="StatementKind.Write"/>, and it never throws.
/// </summary>
/// <remarks>
/// Strings are lexed as with <c>standard_conforming_strings = on</c> (the server default since 9.1; PostgreSQL 19
/// removes <c>off</c>): a backslash escapes only inside <c>E'...'</c>. On a server still running with <c>off</c>, a
/// crafted text could be read differently; a write misread as a read is then refused by the read-only replica and
/// retried on the primary.
/// </remarks>
internal static class PgStatementClassifier
{
    private const int MaxKeywordLength = 24;
    private const string TemporaryTable = "temporary table";
    private const string TemporaryObject = "temporary object";
    private const string TransactionControl = "transaction control";
    private const string Cursor = "cursor";
    private const string PreparedStatement = "prepared statement";
    private const string StrongIsolation = "isolation stronger than read committed";
    private const string NotificationListener = "notification listener";
    private const string SequenceAccess = "sequence access";
    private const string AdvisoryLock = "advisory lock";
    private const string SetConfig = "set_config changes session settings";
    private const string DataModifyingWith = "data-modifying WITH query";
    private const string SelectInto = "SELECT INTO";
    private const string Unrecognised = "unrecognised statement";
    private const string UnbalancedParentheses = "unbalanced parentheses";
    private const string MixedSessionCommand = "session command mixed with other statements";

    private static readonly StatementClassification EmptyText = new(StatementKind.Unknown, detail: "empty statement");
    private static readonly StatementClassification UnterminatedString = new(StatementKind.Unknown, detail: "unterminated string literal");
    private static readonly StatementClassification UnterminatedQuotedIdentifier = new(StatementKind.Unknown, detail: "unterminated quoted identifier");
    private static readonly StatementClassification UnterminatedComment = new(StatementKind.Unknown, detail: "unterminated block comment");
    private static readonly StatementClassification UnterminatedDollarQuote = new(StatementKind.Unknown, detail: "unterminated dollar-quoted string");

    /// <summary>Classifies a command text that may hold several statements separated by <c>;</c>.</summary>
    /// <param name="commandText">The SQL text.</param>
    /// <returns>The combined classification of all statements of the text.</returns>
    public static StatementClassification Classify(string commandText)
    {
        if (string.IsNullOrEmpty(commandText))
        {
            return EmptyText;
        }

        var lexer = new Lexer(commandText);
        var batch = default(BatchFacts);
        List<string>? functions = null;
        while (true)
        {
            Token token = lexer.Next();
            if (token.Kind == TokenKind.End)
            {
                break;
            }

            if (token.Kind == TokenKind.Semicolon)
            {
                continue; // an empty statement
            }

            StatementFacts statement = token.Kind == TokenKind.Error
                ? default
                : ClassifyStatement(ref lexer, token, ref functions, nested: false);
            if (lexer.Error != LexError.None)
            {
                return lexer.Error switch
                {
                    LexError.UnterminatedString => UnterminatedString,
                    LexError.UnterminatedQuotedIdentifier => UnterminatedQuotedIdentifier,
                    LexError.UnterminatedComment => UnterminatedComment,
                    _ => UnterminatedDollarQuote,
                };
            }

            batch.Add(statement);
        }

        RoutingHint hint = lexer.HintPrimary ? RoutingHint.Primary : lexer.HintReplica ? RoutingHint.Replica : RoutingHint.None;
        return batch.ToClassification(hint, functions);
    }

    private static StatementFacts ClassifyStatement(ref Lexer lexer, Token first, ref List<string>? functions, bool nested)
    {
        if (first.Kind == TokenKind.OpenParen)
        {
            // (SELECT 1) UNION (SELECT 2)
            return Scan(ref lexer, first, firstIsPending: true, ScanMode.Query, StatementFacts.Read(null), ref functions);
        }

        if (first.Kind != TokenKind.Word)
        {
            return Scan(ref lexer, first, firstIsPending: true, ScanMode.Other, StatementFacts.Unknown(Unrecognised), ref functions);
        }

        switch (first.Keyword)
        {
            case Keyword.Select:
            case Keyword.Values:
            case Keyword.Table:
            case Keyword.With:
                return Scan(ref lexer, first, firstIsPending: false, ScanMode.Query, StatementFacts.Read(null), ref functions);

            case Keyword.Show:
                return Scan(ref lexer, first, firstIsPending: false, ScanMode.Other, StatementFacts.Read(null), ref functions);

            case Keyword.Explain:
                return ClassifyExplain(ref lexer, first, ref functions, nested);

            case Keyword.Copy:
                // The head (read or write) depends on TO / FROM, which the scan finds.
                return Scan(ref lexer, first, firstIsPending: false, ScanMode.Copy, StatementFacts.Unknown("COPY"), ref functions);

            case Keyword.Insert:
            case Keyword.Update:
            case Keyword.Delete:
            case Keyword.Merge:
            case Keyword.Call:
                return Scan(ref lexer, first, firstIsPending: false, ScanMode.Dml, StatementFacts.Write(WriteDetail(first.Keyword)), ref functions);

            case Keyword.Create:
                return ClassifyCreate(ref lexer, first, ref functions);

            case Keyword.Alter:
            case Keyword.Drop:
            case Keyword.Comment:
            case Keyword.Grant:
            case Keyword.Revoke:
            case Keyword.Reindex:
            case Keyword.Cluster:
            case Keyword.Vacuum:
            case Keyword.Analyze:
            case Keyword.Analyse:
            case Keyword.Refresh:
            case Keyword.Security:
            case Keyword.Import:
            case Keyword.Lock:
            case Keyword.Do:
            case Keyword.Notify:
            case Keyword.Checkpoint:
            case Keyword.Truncate:
            case Keyword.Reassign:
                return Scan(ref lexer, first, firstIsPending: false, ScanMode.Other, StatementFacts.Write(WriteDetail(first.Keyword)), ref functions);

            case Keyword.Declare:
            case Keyword.Fetch:
            case Keyword.Move:
            case Keyword.Close:
                return Scan(ref lexer, first, firstIsPending: false, ScanMode.Other, StatementFacts.Pinned(StatementKind.Unknown, Cursor), ref functions);

            case Keyword.Begin:
            case Keyword.Start:
            case Keyword.Commit:
            case Keyword.End:
            case Keyword.Rollback:
            case Keyword.Abort:
            case Keyword.Savepoint:
            case Keyword.Release:
                return Scan(ref lexer, first, firstIsPending: false, ScanMode.Other, StatementFacts.Pinned(StatementKind.Unknown, TransactionControl), ref functions);

            case Keyword.Prepare:
            {
                Lexer peek = lexer;
                string detail = peek.Next().Keyword == Keyword.Transaction ? TransactionControl : PreparedStatement;
                return Scan(ref lexer, first, firstIsPending: false, ScanMode.Other, StatementFacts.Pinned(StatementKind.Unknown, detail), ref functions);
            }

            case Keyword.Execute:
            case Keyword.Deallocate:
                return Scan(ref lexer, first, firstIsPending: false, ScanMode.Other, StatementFacts.Pinned(StatementKind.Unknown, PreparedStatement), ref functions);

            case Keyword.Listen:
            case Keyword.Unlisten:
                return Scan(ref lexer, first, firstIsPending: false, ScanMode.Other, StatementFacts.Pinned(StatementKind.Unknown, NotificationListener), ref functions);

            case Keyword.Discard:
                return Scan(ref lexer, first, firstIsPending: false, ScanMode.Other, StatementFacts.Pinned(StatementKind.Unknown, "DISCARD"), ref functions);

            case Keyword.Set:
                return Scan(ref lexer, first, firstIsPending: false, ScanMode.Other, ClassifySet(lexer), ref functions);

            case Keyword.Reset:
                return Scan(ref lexer, first, firstIsPending: false, ScanMode.Other, new StatementFacts(StatementKind.Read, SessionEffect.Replay, "RESET"), ref functions);

            default:
                return Scan(ref lexer, first, firstIsPending: false, ScanMode.Other, StatementFacts.Unknown(Unrecognised), ref functions);
        }
    }

    private static StatementFacts Scan(ref Lexer lexer, Token first, bool firstIsPending, ScanMode mode, StatementFacts head, ref List<string>? functions, bool createRoutine = false)
    {
        var scan = new BodyScan(mode, createRoutine);
        scan.Run(ref lexer, first, firstIsPending, ref functions);
        return scan.Finish(head);
    }

    private static StatementFacts ClassifyExplain(ref Lexer lexer, Token first, ref List<string>? functions, bool nested)
    {
        if (nested)
        {
            // EXPLAIN EXPLAIN is not SQL; refusing it also bounds the recursion on hostile text.
            return Scan(ref lexer, first, firstIsPending: false, ScanMode.Other, StatementFacts.Unknown(Unrecognised), ref functions);
        }

        bool analyze = false;
        Token token = lexer.Next();
        if (token.Kind == TokenKind.OpenParen)
        {
            if (!ReadExplainOptions(ref lexer, ref analyze))
            {
                return StatementFacts.Unknown("malformed EXPLAIN");
            }

            token = lexer.Next();
        }
        else
        {
            while (token.Keyword is Keyword.Analyze or Keyword.Analyse or Keyword.Verbose)
            {
                analyze |= token.Keyword != Keyword.Verbose;
                token = lexer.Next();
            }
        }

        if (token.Kind is TokenKind.End or TokenKind.Semicolon or TokenKind.Error)
        {
            return StatementFacts.Unknown("EXPLAIN without a statement");
        }

        int known = functions?.Count ?? 0;
        StatementFacts inner = ClassifyStatement(ref lexer, token, ref functions, nested: true);
        if (analyze)
        {
            return inner; // EXPLAIN ANALYZE runs the statement
        }

        // Without ANALYZE nothing runs: the planner only folds immutable and stable functions, which cannot write.
        if (functions is not null && functions.Count > known)
        {
            functions.RemoveRange(known, functions.Count - known);
        }

        if (inner.Detail is TemporaryTable or TemporaryObject)
        {
            // Planning CREATE TEMP TABLE ... AS creates the session's temporary schema, which a hot standby refuses.
            return StatementFacts.Write("EXPLAIN of a temporary object");
        }

        return inner.Kind == StatementKind.Unknown ? inner : StatementFacts.Read("EXPLAIN");
    }

    /// <summary>Reads <c>( option [value], ... )</c> after EXPLAIN. Returns false when the statement ended inside it.</summary>
    private static bool ReadExplainOptions(ref Lexer lexer, ref bool analyze)
    {
        int depth = 1;
        bool optionStart = true;
        while (true)
        {
            Token token = lexer.Next();
            switch (token.Kind)
            {
                case TokenKind.End:
                case TokenKind.Error:
                case TokenKind.Semicolon:
                    return false;
                case TokenKind.OpenParen:
                    depth++;
                    break;
                case TokenKind.CloseParen:
                    if (--depth == 0)
                    {
                        return true;
                    }

                    break;
                case TokenKind.Word when depth == 1 && optionStart && token.Keyword is Keyword.Analyze or Keyword.Analyse:
                {
                    Lexer peek = lexer;
                    Token value = peek.Next();
                    analyze = value.Kind is TokenKind.Comma or TokenKind.CloseParen || !IsFalse(lexer, value);
                    break;
                }
            }

            optionStart = depth == 1 && token.Kind is TokenKind.OpenParen or TokenKind.Comma;
        }
    }

    /// <summary>Whether an EXPLAIN option value is false (PostgreSQL accepts false / off / 0 there).</summary>
    private static bool IsFalse(in Lexer lexer, Token value)
    {
        ReadOnlySpan<char> text = lexer.Text(value);
        if (value.Kind == TokenKind.String && text.Length >= 2 && text[0] == '\'')
        {
            text = text[1..^1];
        }
        else if (value.Kind is not (TokenKind.Word or TokenKind.Number))
        {
            return false;
        }

        return text.Equals("false", StringComparison.OrdinalIgnoreCase)
            || text.Equals("off", StringComparison.OrdinalIgnoreCase)
            || text.SequenceEqual("0");
    }

    private static StatementFacts ClassifyCreate(ref Lexer lexer, Token first, ref List<string>? functions)
    {
        // CREATE [OR REPLACE] [GLOBAL | LOCAL] {TEMP | TEMPORARY} [UNLOGGED] {TABLE | VIEW | SEQUENCE ...}
        Lexer peek = lexer;
        Token token = peek.Next();
        if (token.Keyword == Keyword.Or)
        {
            peek.Next(); // REPLACE
            token = peek.Next();
        }

        bool routine = token.Keyword is Keyword.Function or Keyword.Procedure;
        if (token.Keyword is Keyword.Global or Keyword.Local)
        {
            token = peek.Next();
        }

        bool temporary = token.Keyword is Keyword.Temp or Keyword.Temporary;
        if (temporary)
        {
            token = peek.Next();
            if (token.Keyword == Keyword.Unlogged)
            {
                token = peek.Next();
            }
        }

        StatementFacts head = temporary
            ? StatementFacts.Pinned(StatementKind.Write, token.Keyword == Keyword.Table ? TemporaryTable : TemporaryObject)
            : StatementFacts.Write("CREATE");
        return Scan(ref lexer, first, firstIsPending: false, ScanMode.Create, head, ref functions, createRoutine: routine);
    }

    /// <summary>Classifies <c>SET ...</c> from the token after SET, without consuming it.</summary>
    private static StatementFacts ClassifySet(Lexer peek)
    {
        Token token = peek.Next();
        switch (token.Keyword)
        {
            case Keyword.Local:
                return StatementFacts.Read("SET LOCAL"); // ends with the transaction
            case Keyword.Transaction:
                return RestNamesStrongIsolation(peek)
                    ? StatementFacts.Pinned(StatementKind.Unknown, StrongIsolation)
                    : RestNamesReadWrite(peek)
                        ? StatementFacts.Write(ReadWriteTransaction) // a hot standby refuses read-write mode
                        : StatementFacts.Read("SET TRANSACTION");
            case Keyword.Constraints:
                return StatementFacts.Read("SET CONSTRAINTS");
            case Keyword.Session:
            {
                Lexer afterSession = peek;
                Token next = afterSession.Next();
                if (next.Keyword == Keyword.Characteristics)
                {
                    return RestNamesStrongIsolation(afterSession)
                        ? StatementFacts.Pinned(StatementKind.Unknown, StrongIsolation)
                        : new StatementFacts(StatementKind.Read, SessionEffect.Replay, "SET SESSION CHARACTERISTICS");
                }

                return ClassifySetParameter(afterSession, next);
            }

            default:
                return ClassifySetParameter(peek, token);
        }
    }

    private static StatementFacts ClassifySetParameter(Lexer afterName, Token name)
    {
        // SET default_transaction_isolation = 'serializable' is SET SESSION CHARACTERISTICS in another spelling.
        if (name.Kind is TokenKind.Word or TokenKind.QuotedIdentifier)
        {
            ReadOnlySpan<char> text = afterName.Text(name).Trim('"');
            if ((text.Equals("default_transaction_isolation", StringComparison.OrdinalIgnoreCase)
                    || text.Equals("transaction_isolation", StringComparison.OrdinalIgnoreCase))
                && RestNamesStrongIsolation(afterName))
            {
                return StatementFacts.Pinned(StatementKind.Unknown, StrongIsolation);
            }
        }

        return new StatementFacts(StatementKind.Read, SessionEffect.Replay, "SET");
    }

    private const string ReadWriteTransaction = "SET TRANSACTION READ WRITE";

    /// <summary>Whether the rest of the statement names READ WRITE.</summary>
    private static bool RestNamesReadWrite(Lexer peek)
    {
        bool afterRead = false;
        while (true)
        {
            Token token = peek.Next();
            if (token.Kind is TokenKind.End or TokenKind.Error or TokenKind.Semicolon)
            {
                return false;
            }

            bool isWord = token.Kind == TokenKind.Word;
            if (afterRead && isWord && peek.Text(token).Equals("write", StringComparison.OrdinalIgnoreCase))
            {
                return true;
            }

            afterRead = isWord && peek.Text(token).Equals("read", StringComparison.OrdinalIgnoreCase);
        }
    }

    /// <summary>Whether the rest of the statement names REPEATABLE READ or SERIALIZABLE (as a keyword or a string).</summary>
    private static bool RestNamesStrongIsolation(Lexer peek)
    {
        while (true)
        {
            Token token = peek.Next();
            switch (token.Kind)
            {
                case TokenKind.End:
                case TokenKind.Error:
                case TokenKind.Semicolon:
                    return false;
                case TokenKind.Word when token.Keyword is Keyword.Repeatable or Keyword.Serializable:
                    return true;
                case TokenKind.String:
                {
                    ReadOnlySpan<char> text = peek.Text(token);
                    if (text.Contains("serializable", StringComparison.OrdinalIgnoreCase)
                        || text.Contains("repeatable", StringComparison.OrdinalIgnoreCase))
                    {
                        return true;
                    }

                    break;
                }
            }
        }
    }

    private static string WriteDetail(Keyword keyword) => keyword switch
    {
        Keyword.Insert => "INSERT",
        Keyword.Update => "UPDATE",
        Keyword.Delete => "DELETE",
        Keyword.Merge => "MERGE",
        Keyword.Call => "CALL",
        Keyword.Alter => "ALTER",
        Keyword.Drop => "DROP",
        Keyword.Comment => "COMMENT",
        Keyword.Grant => "GRANT",
        Keyword.Revoke => "REVOKE",
        Keyword.Reindex => "REINDEX",
        Keyword.Cluster => "CLUSTER",
        Keyword.Vacuum => "VACUUM",
        Keyword.Analyze or Keyword.Analyse => "ANALYZE",
        Keyword.Refresh => "REFRESH",
        Keyword.Security => "SECURITY LABEL",
        Keyword.Import => "IMPORT FOREIGN SCHEMA",
        Keyword.Lock => "LOCK",
        Keyword.Do => "DO",
        Keyword.Notify => "NOTIFY",
        Keyword.Checkpoint => "CHECKPOINT",
        Keyword.Truncate => "TRUNCATE",
        Keyword.Reassign => "REASSIGN OWNED",
        _ => "write",
    };

    /// <summary>Order of <see cref="StatementKind"/> by how much it restricts routing.</summary>
    private static int Rank(StatementKind kind) => kind switch
    {
        StatementKind.Read => 0,
        StatementKind.Unknown => 1,
        _ => 2,
    };

    private enum ScanMode : byte
    {
        /// <summary>Statements whose functions do not matter for routing (DDL, session and cursor commands).</summary>
        Other,

        /// <summary>CREATE: also watches for objects created in <c>pg_temp</c>.</summary>
        Create,

        /// <summary>A statement that may be a read (SELECT, VALUES, TABLE, WITH, parenthesised query).</summary>
        Query,

        /// <summary>COPY: a query when it copies TO STDOUT, a write when it copies FROM.</summary>
        Copy,

        /// <summary>DML and CALL: writes already; functions are still collected (session-level advisory locks pin).</summary>
        Dml,
    }

    /// <summary>What one statement is, before batches are combined.</summary>
    private readonly record struct StatementFacts(StatementKind Kind, SessionEffect Effect, string? Detail)
    {
        public static StatementFacts Read(string? detail) => new(StatementKind.Read, SessionEffect.None, detail);

        public static StatementFacts Write(string detail) => new(StatementKind.Write, SessionEffect.None, detail);

        public static StatementFacts Unknown(string detail) => new(StatementKind.Unknown, SessionEffect.None, detail);

        public static StatementFacts Pinned(StatementKind kind, string detail) => new(kind, SessionEffect.Pin, detail);
    }

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

        public readonly StatementFacts Finish(StatementFacts head)
        {
            if (mode == ScanMode.Copy)
            {
                head = copyFrom ? StatementFacts.Write("COPY FROM")
                    : copyToFile ? StatementFacts.Write("COPY TO file")
                    : copyToStdout ? StatementFacts.Read(null)
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
                return new StatementFacts(pinnedKind, SessionEffect.Pin, pinDetail);
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

    /// <summary>Combines the statements of one command text.</summary>
    private struct BatchFacts
    {
        private int statements;
        private int replays;
        private bool anyPin;
        private bool anyWrite;
        private bool anyUnknown;
        private string? pinDetail;
        private string? writeDetail;
        private string? unknownDetail;
        private string? replayDetail;
        private string? readDetail;

        public void Add(StatementFacts statement)
        {
            statements++;
            switch (statement.Kind)
            {
                case StatementKind.Write:
                    writeDetail ??= statement.Detail;
                    anyWrite = true;
                    break;
                case StatementKind.Unknown:
                    unknownDetail ??= statement.Detail;
                    anyUnknown = true;
                    break;
                default:
                    readDetail ??= statement.Detail;
                    break;
            }

            if (statement.Effect == SessionEffect.Pin)
            {
                anyPin = true;
                pinDetail ??= statement.Detail;
            }
            else if (statement.Effect == SessionEffect.Replay)
            {
                replays++;
                replayDetail ??= statement.Detail;
            }
        }

        public readonly StatementClassification ToClassification(RoutingHint hint, List<string>? functions)
        {
            if (statements == 0)
            {
                return hint == RoutingHint.None ? EmptyText : new StatementClassification(StatementKind.Unknown, hint: hint, detail: EmptyText.Detail);
            }

            StatementKind kind = anyWrite ? StatementKind.Write : anyUnknown ? StatementKind.Unknown : StatementKind.Read;

            // Replaying a batch re-runs all of it, so a SET mixed with other statements cannot be replayed: pin instead.
            bool mixedReplay = replays > 0 && replays < statements;
            SessionEffect effect = anyPin || mixedReplay ? SessionEffect.Pin
                : replays > 0 ? SessionEffect.Replay
                : SessionEffect.None;
            string? detail = pinDetail
                ?? (mixedReplay ? MixedSessionCommand : null)
                ?? (anyWrite ? writeDetail : null)
                ?? (anyUnknown ? unknownDetail : null)
                ?? replayDetail
                ?? readDetail;

            if (kind == StatementKind.Read && effect == SessionEffect.None && hint == RoutingHint.None && detail is null
                && (functions is null || functions.Count == 0))
            {
                return StatementClassification.PlainRead;
            }

            return new StatementClassification(kind, effect, hint, functions, detail);
        }
    }

    private enum TokenKind : byte
    {
        None,
        End,
        Error,
        Word,
        QuotedIdentifier,
        String,
        Number,
        Parameter,
        Operator,
        OpenParen,
        CloseParen,
        Comma,
        Dot,
        Semicolon,
    }

    private enum LexError : byte
    {
        None,
        UnterminatedString,
        UnterminatedQuotedIdentifier,
        UnterminatedComment,
        UnterminatedDollarQuote,
    }

    private readonly record struct Token(TokenKind Kind, int Start, int Length, Keyword Keyword = Keyword.None);

    /// <summary>
    /// A single-pass PostgreSQL lexer. A copy of it is a lookahead: copies are cheap and the original is untouched.
    /// Comments are skipped, and routing hints in them recorded.
    /// </summary>
    private struct Lexer
    {
        private readonly string text;
        private int position;

        public Lexer(string text)
        {
            this.text = text;
        }

        public LexError Error { get; private set; }

        public bool HintPrimary { get; private set; }

        public bool HintReplica { get; private set; }

        public readonly ReadOnlySpan<char> Text(Token token) => text.AsSpan(token.Start, token.Length);

        public Token Next()
        {
            string s = text;
            int i = position;
            while (true)
            {
                if (i >= s.Length)
                {
                    position = i;
                    return new Token(Error == LexError.None ? TokenKind.End : TokenKind.Error, i, 0);
                }

                char c = s[i];
                if (c is ' ' or '\t' or '\n' or '\r' or '\f' or '\v')
                {
                    i++;
                }
                else if (c == '-' && At(i + 1) == '-')
                {
                    int end = i + 2;
                    while (end < s.Length && s[end] is not ('\n' or '\r'))
                    {
                        end++;
                    }

                    ScanHints(i + 2, end);
                    i = end;
                }
                else if (c == '/' && At(i + 1) == '*')
                {
                    // Block comments nest in PostgreSQL.
                    int end = i + 2;
                    int nesting = 1;
                    while (nesting > 0)
                    {
                        if (end + 1 >= s.Length)
                        {
                            return Fail(LexError.UnterminatedComment);
                        }

                        if (s[end] == '/' && s[end + 1] == '*')
                        {
                            nesting++;
                            end += 2;
                        }
                        else if (s[end] == '*' && s[end + 1] == '/')
                        {
                            nesting--;
                            end += 2;
                        }
                        else
                        {
                            end++;
                        }
                    }

                    ScanHints(i + 2, end - 2);
                    i = end;
                }
                else
                {
                    break;
                }
            }

            char first = s[i];
            char second = At(i + 1);
            if (IsIdentifierStart(first) && second is not ('\'' or '&'))
            {
                // The common case first: a keyword or a name (E'', B'', X'', N'' and U&'' start like one).
                int end = SkipIdentifier(i + 1);
                position = end;
                return new Token(TokenKind.Word, i, end - i, LookupKeyword(s.AsSpan(i, end - i)));
            }

            switch (first)
            {
                case '\'':
                    return LexString(i, i + 1, backslashEscapes: false);
                case 'e' or 'E' when second == '\'':
                    return LexString(i, i + 2, backslashEscapes: true);
                case 'b' or 'B' or 'x' or 'X' or 'n' or 'N' when second == '\'':
                    return LexString(i, i + 2, backslashEscapes: false);
                case 'u' or 'U' when second == '&' && At(i + 2) == '\'':
                    return LexString(i, i + 3, backslashEscapes: false);
                case 'u' or 'U' when second == '&' && At(i + 2) == '"':
                    return LexQuotedIdentifier(i, i + 3);
                case '"':
                    return LexQuotedIdentifier(i, i + 1);
                case '$':
                    return LexDollar(i);
                case '(':
                    return Single(TokenKind.OpenParen, i);
                case ')':
                    return Single(TokenKind.CloseParen, i);
                case ',':
                    return Single(TokenKind.Comma, i);
                case ';':
                    return Single(TokenKind.Semicolon, i);
                case '.' when !IsDigit(second):
                    return Single(TokenKind.Dot, i);
                case ':' when second == ':':
                    position = i + 2;
                    return new Token(TokenKind.Operator, i, 2);
                case ':' or '@' when IsIdentifierStart(second):
                {
                    // Npgsql named parameters :name and @name.
                    int end = SkipIdentifier(i + 1);
                    position = end;
                    return new Token(TokenKind.Parameter, i, end - i);
                }
            }

            if (IsIdentifierStart(first))
            {
                int end = SkipIdentifier(i);
                position = end;
                return new Token(TokenKind.Word, i, end - i, LookupKeyword(s.AsSpan(i, end - i)));
            }

            if (IsDigit(first) || first == '.')
            {
                return LexNumber(i);
            }

            return Single(TokenKind.Operator, i);
        }

        private readonly char At(int index) => index < text.Length ? text[index] : '\0';

        private Token Single(TokenKind kind, int start)
        {
            position = start + 1;
            return new Token(kind, start, 1);
        }

        private Token Fail(LexError error)
        {
            Error = error;
            position = text.Length;
            return new Token(TokenKind.Error, text.Length, 0);
        }

        private readonly int SkipIdentifier(int index)
        {
            while (index < text.Length && IsIdentifierPart(text[index]))
            {
                index++;
            }

            return index;
        }

        private Token LexString(int start, int bodyStart, bool backslashEscapes)
        {
            string s = text;
            int i = bodyStart;
            while (true)
            {
                if (i >= s.Length)
                {
                    return Fail(LexError.UnterminatedString);
                }

                char c = s[i];
                if (c == '\\' && backslashEscapes)
                {
                    i += 2;
                }
                else if (c == '\'')
                {
                    if (At(i + 1) != '\'')
                    {
                        position = i + 1;
                        return new Token(TokenKind.String, start, i + 1 - start);
                    }

                    i += 2; // '' stands for one '
                }
                else
                {
                    i++;
                }
            }
        }

        private Token LexQuotedIdentifier(int start, int bodyStart)
        {
            string s = text;
            int i = bodyStart;
            while (true)
            {
                if (i >= s.Length)
                {
                    return Fail(LexError.UnterminatedQuotedIdentifier);
                }

                if (s[i] == '"')
                {
                    if (At(i + 1) != '"')
                    {
                        position = i + 1;
                        return new Token(TokenKind.QuotedIdentifier, start, i + 1 - start);
                    }

                    i += 2;
                }
                else
                {
                    i++;
                }
            }
        }

        private Token LexDollar(int start)
        {
            string s = text;
            int i = start + 1;
            if (IsDigit(At(i)))
            {
                while (IsDigit(At(i)))
                {
                    i++;
                }

                position = i;
                return new Token(TokenKind.Parameter, start, i - start);
            }

            // $$ or $tag$: the tag is an identifier without '$'.
            if (IsIdentifierStart(At(i)))
            {
                i++;
                while (i < s.Length && IsIdentifierPart(s[i]) && s[i] != '$')
                {
                    i++;
                }
            }

            if (At(i) != '$')
            {
                return Single(TokenKind.Operator, start);
            }

            ReadOnlySpan<char> delimiter = s.AsSpan(start, i + 1 - start);
            int bodyStart = i + 1;
            int found = s.AsSpan(bodyStart).IndexOf(delimiter);
            if (found < 0)
            {
                return Fail(LexError.UnterminatedDollarQuote);
            }

            position = bodyStart + found + delimiter.Length;
            return new Token(TokenKind.String, start, position - start);
        }

        private Token LexNumber(int start)
        {
            int i = start;
            if (text[i] == '0' && (At(i + 1) | 0x20) is 'x' or 'o' or 'b' && IsHexDigit(At(i + 2)))
            {
                i += 2;
                while (IsHexDigit(At(i)) || At(i) == '_')
                {
                    i++;
                }
            }
            else
            {
                while (IsDigit(At(i)) || At(i) == '_')
                {
                    i++;
                }

                if (At(i) == '.' && At(i + 1) != '.')
                {
                    i++;
                    while (IsDigit(At(i)) || At(i) == '_')
                    {
                        i++;
                    }
                }

                if ((At(i) | 0x20) == 'e')
                {
                    int exponent = i + 1;
                    if (At(exponent) is '+' or '-')
                    {
                        exponent++;
                    }

                    if (IsDigit(At(exponent)))
                    {
                        i = exponent;
                        while (IsDigit(At(i)))
                        {
                            i++;
                        }
                    }
                }
            }

            // Letters right after a number stay a separate word (1FOR UPDATE parsed before PostgreSQL 15).
            position = i;
            return new Token(TokenKind.Number, start, i - start);
        }

        private void ScanHints(int start, int end)
        {
            ReadOnlySpan<char> comment = text.AsSpan(start, Math.Max(0, end - start));
            while (true)
            {
                int at = comment.IndexOf("rwsplit:", StringComparison.OrdinalIgnoreCase);
                if (at < 0)
                {
                    return;
                }

                comment = comment[(at + "rwsplit:".Length)..];
                if (comment.StartsWith("primary", StringComparison.OrdinalIgnoreCase))
                {
                    HintPrimary = true;
                }
                else if (comment.StartsWith("replica", StringComparison.OrdinalIgnoreCase))
                {
                    HintReplica = true;
                }
            }
        }

        private static bool IsDigit(char c) => (uint)(c - '0') <= 9;

        private static bool IsHexDigit(char c) => IsDigit(c) || (uint)((c | 0x20) - 'a') <= 'f' - 'a';

        private static bool IsIdentifierStart(char c) => (uint)((c | 0x20) - 'a') <= 'z' - 'a' || c == '_' || c >= 0x80;

        private static bool IsIdentifierPart(char c) => IsIdentifierStart(c) || IsDigit(c) || c == '$';
    }

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
