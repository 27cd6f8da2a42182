using System;
using System.Collections.Generic;
using System.IO;
using System.Text;
using System.Threading;
using Microsoft.SqlServer.TransactSql.ScriptDom;
using RwSplit.Routing;

namespace RwSplit.SqlServer;

/// <summary>
/// Classifies T-SQL command texts with the official parser (ScriptDom): reads, writes, session effects and routing
/// hints. Fails closed: whatever it cannot prove to be a read is <see cref="StatementKind.Unknown"/> or
/// <see cref="StatementKind.Write"/>, so it goes to the primary. Thread-safe; never throws for any input.
/// </summary>
internal sealed partial class TSqlStatementClassifier
{
    // EXEC('EXEC(''...'')') can nest without end; beyond this the text is not worth reading.
    private const int MaxDynamicSqlDepth = 4;

    // The parser and the visitors recurse once per nesting level (about 2 KB of stack for a parenthesis or CASE) and
    // once per operand of an operator chain (a OR b OR ...). A stack overflow kills the process instead of throwing,
    // so a text is parsed on the caller's stack only when it is small and shallow (a few hundred KB of stack at
    // most); anything bigger goes to a thread with a large stack, and anything beyond that is not parsed at all.
    private const int CallerStackMaxTokens = 2048;
    private const int CallerStackMaxNesting = 48;
    private const int MaxTokens = 250_000;
    private const int MaxNesting = 1000;
    private const int MaxCommentNesting = 32; // nested /* comments: ScriptDom lexes them recursively, on the caller's stack
    private const int MaxTextLength = 4 * 1024 * 1024;
    private const int LargeStackSize = 64 * 1024 * 1024;

    private const string StoredProcedureDetail = "stored procedure";
    private const string TemporaryTableDetail = "temporary table";

    private static readonly StatementClassification EmptyText = new(StatementKind.Unknown, detail: "empty command text");
    private static readonly StatementClassification UndeclaredProcedure = new(StatementKind.Write, detail: StoredProcedureDetail);

    // ScriptDom parsers keep state while they parse, so each thread gets its own; the instance is reusable.
    [ThreadStatic]
    private static TSql180Parser? t_parser;

    [ThreadStatic]
    private static bool t_onLargeStack;

    // Declared as "schema.name": matches EXEC schema.name and EXEC name.
    private readonly HashSet<string> _readOnlyQualified = new(StringComparer.OrdinalIgnoreCase);

    // Declared as "name": matches EXEC name under any schema.
    private readonly HashSet<string> _readOnlyAnySchema = new(StringComparer.OrdinalIgnoreCase);

    // The unqualified names of every declaration, for an EXEC without a schema.
    private readonly HashSet<string> _readOnlyBaseNames = new(StringComparer.OrdinalIgnoreCase);

    /// <summary>Creates a classifier.</summary>
    /// <param name="readOnlyProcedures">
    /// Procedures the user declared read-only, as <c>name</c> or <c>schema.name</c> (brackets allowed, case-insensitive).
    /// </param>
    /// <exception cref="ArgumentException">A name is empty or is not a procedure name.</exception>
    public TSqlStatementClassifier(IEnumerable<string> readOnlyProcedures)
    {
        ArgumentNullException.ThrowIfNull(readOnlyProcedures);
        foreach (string declared in readOnlyProcedures)
        {
            SchemaObjectName? name = string.IsNullOrWhiteSpace(declared) ? null : ParseProcedureName(declared);
            if (name?.BaseIdentifier is null || name.ServerIdentifier is not null)
            {
                throw new ArgumentException(
                    $"'{declared}' is not a read-only procedure name: write it as name or schema.name, such as dbo.GetOrders.",
                    nameof(readOnlyProcedures));
            }

            string baseName = name.BaseIdentifier.Value;
            _readOnlyBaseNames.Add(baseName);
            if (name.SchemaIdentifier is null)
            {
                _readOnlyAnySchema.Add(baseName);
            }
            else
            {
                _readOnlyQualified.Add(name.SchemaIdentifier.Value + "." + baseName);
            }
        }
    }

    private static TSql180Parser Parser => t_parser ??= new TSql180Parser(initialQuotedIdentifiers: true);

    /// <summary>Classifies the text of a <see cref="System.Data.CommandType.Text"/> command.</summary>
    /// <param name="commandText">The T-SQL text, one or more statements (and batches).</param>
    public StatementClassification Classify(string commandText)
    {
        if (string.IsNullOrWhiteSpace(commandText))
        {
            return EmptyText;
        }

        if (commandText.Length > MaxTextLength)
        {
            return new StatementClassification(StatementKind.Unknown, detail: "command text too long to classify");
        }

        try
        {
            return Analyze(commandText, dynamicDepth: 0).ToClassification();
        }
#pragma warning disable CA1031 // The classifier must never throw: an internal failure fails closed instead.
        catch (Exception exception)
#pragma warning restore CA1031
        {
            return new StatementClassification(StatementKind.Unknown, detail: "T-SQL classifier failed: " + exception.GetType().Name);
        }
    }

    /// <summary>Classifies a <see cref="System.Data.CommandType.StoredProcedure"/> command by the procedure's name.</summary>
    /// <param name="procedureName">The procedure name as given to the command, such as <c>dbo.GetOrders</c>.</param>
    public StatementClassification ClassifyProcedure(string procedureName)
    {
        if (string.IsNullOrWhiteSpace(procedureName))
        {
            return UndeclaredProcedure;
        }

        try
        {
            SchemaObjectName? name = ParseProcedureName(procedureName);
            if (name is null)
            {
                return UndeclaredProcedure;
            }

            var findings = new Findings();
            findings.Statements = 1;
            ClassifyProcedureCall(name, findings);
            return findings.ToClassification();
        }
#pragma warning disable CA1031 // The classifier must never throw: an internal failure fails closed instead.
        catch (Exception)
#pragma warning restore CA1031
        {
            return UndeclaredProcedure;
        }
    }

    private static SchemaObjectName? ParseProcedureName(string text)
    {
        using var reader = new StringReader(text.Trim());
        SchemaObjectName? name = Parser.ParseSchemaObjectName(reader, out IList<ParseError> errors);
        return errors.Count == 0 ? name : null;
    }

    private Findings Analyze(string text, int dynamicDepth)
    {
        var findings = new Findings();
        if (BlockCommentNesting(text) > MaxCommentNesting)
        {
            // ScriptDom's lexer recurses once per nested /* (TSql180LexerInternal.mMultilineComment): 20 000 of them
            // overflowed the stack and killed the process, which no catch can stop. Such a text is refused unread.
            findings.AddUnknown("comments nested too deeply to classify");
            return findings;
        }

        IList<TSqlParserToken>? tokens;
        IList<ParseError> errors;
        using (var reader = new StringReader(text))
        {
            // Lexing is a loop, except for nested block comments (bounded above): it tells how deep the parse will go.
            tokens = Parser.GetTokenStream(reader, out errors);
        }

        if (tokens is not null)
        {
            findings.ReadHints(tokens);
        }

        if (errors.Count > 0 || tokens is null)
        {
            findings.AddUnknown(errors.Count > 0 ? DescribeParseError(errors[0], tokens) : "T-SQL parse error");
            return findings;
        }

        int nesting = MeasureNesting(tokens);
        if (tokens.Count > MaxTokens || nesting > MaxNesting)
        {
            findings.AddUnknown("statement too large or too deeply nested to classify");
            return findings;
        }

        if (!t_onLargeStack && (tokens.Count > CallerStackMaxTokens || nesting > CallerStackMaxNesting))
        {
            RunOnLargeStack(() => ParseAndClassify(tokens, findings, dynamicDepth));
        }
        else
        {
            ParseAndClassify(tokens, findings, dynamicDepth);
        }

        return findings;
    }

    /// <summary>How many <c>/*</c> comments nest at most, counted over the raw text (inside a string too: an overestimate only fails closed).</summary>
    internal static int BlockCommentNesting(string text)
    {
        int depth = 0, deepest = 0;
        for (var i = 0; i + 1 < text.Length; i++)
        {
            if (text[i] == '/' && text[i + 1] == '*')
            {
                deepest = Math.Max(deepest, ++depth);
                i++;
            }
            else if (text[i] == '*' && text[i + 1] == '/' && depth > 0)
            {
                depth--;
                i++;
            }
        }

        return deepest;
    }

    private void ParseAndClassify(IList<TSqlParserToken> tokens, Findings findings, int dynamicDepth)
    {
        TSqlFragment? fragment = Parser.Parse(tokens, out IList<ParseError> errors);
        if (errors.Count > 0)
        {
            findings.AddUnknown(DescribeParseError(errors[0], tokens));
            return;
        }

        if (fragment is TSqlScript script)
        {
            foreach (TSqlBatch batch in script.Batches)
            {
                foreach (TSqlStatement statement in batch.Statements)
                {
                    // The statement's own kind first (so the detail names it), then one walk over the whole statement
                    // for what can hide anywhere in it: locking hints, sequences, OUTPUT, temporary tables.
                    ClassifyStatement(statement, findings, dynamicDepth);
                    statement.Accept(findings);
                }
            }
        }

        if (findings.Statements == 0)
        {
            findings.AddUnknown("no statement in command text");
        }
    }

    // An upper bound of how deeply the parser will recurse: open brackets, CASE and BEGIN not yet closed, plus every
    // IF and WHILE (their bodies nest without a closing token).
    private static int MeasureNesting(IList<TSqlParserToken> tokens)
    {
        int open = 0;
        int deepest = 0;
        int conditionals = 0;
        foreach (TSqlParserToken token in tokens)
        {
            switch (token.TokenType)
            {
                case TSqlTokenType.LeftParenthesis or TSqlTokenType.Case or TSqlTokenType.Begin:
                    open++;
                    deepest = Math.Max(deepest, open);
                    break;
                case TSqlTokenType.RightParenthesis or TSqlTokenType.End:
                    open = Math.Max(0, open - 1);
                    break;
                case TSqlTokenType.If or TSqlTokenType.While:
                    conditionals++;
                    break;
            }
        }

        return deepest + conditionals;
    }

    private static void RunOnLargeStack(Action work)
    {
        Exception? failure = null;
        var thread = new Thread(
            () =>
            {
                t_onLargeStack = true;
                try
                {
                    work();
                }
#pragma warning disable CA1031 // Carried back to the calling thread.
                catch (Exception exception)
#pragma warning restore CA1031
                {
                    failure = exception;
                }
            },
            LargeStackSize)
        {
            IsBackground = true,
            Name = "RwSplit T-SQL classifier",
        };
        thread.Start();
        thread.Join();
        if (failure is not null)
        {
            throw new InvalidOperationException("T-SQL classification failed on the large-stack thread.", failure);
        }
    }

    private void ClassifyStatement(TSqlStatement statement, Findings findings, int dynamicDepth)
    {
        findings.Statements++;
        switch (statement)
        {
            // Reads.
            case SelectStatement select:
                if (select.Into is not null)
                {
                    findings.AddWrite("SELECT INTO");
                }

                return;
            case DeclareVariableStatement or DeclareTableVariableStatement:
            case PrintStatement or RaiseErrorStatement or RaiseErrorLegacyStatement or ThrowStatement:
            case ReturnStatement or BreakStatement or ContinueStatement or GoToStatement or LabelStatement:
            case LineNoStatement or ReadTextStatement:
                return;
            case SetVariableStatement setVariable:
                if (setVariable.CursorDefinition is not null)
                {
                    findings.AddUnknown("cursor");
                    findings.AddPin("cursor");
                }

                return;
            case WaitForStatement waitFor:
                // WAITFOR DELAY/TIME only waits; WAITFOR (RECEIVE ...) is judged by its statement.
                if (waitFor.Statement is not null)
                {
                    ClassifyStatement(waitFor.Statement, findings, dynamicDepth);
                }

                return;

            // Control flow: as good as its contents.
            case IfStatement ifStatement:
                ClassifyStatement(ifStatement.ThenStatement, findings, dynamicDepth);
                if (ifStatement.ElseStatement is not null)
                {
                    ClassifyStatement(ifStatement.ElseStatement, findings, dynamicDepth);
                }

                return;
            case WhileStatement whileStatement:
                ClassifyStatement(whileStatement.Statement, findings, dynamicDepth);
                return;
            case BeginEndBlockStatement block:
                ClassifyStatements(block.StatementList, findings, dynamicDepth);
                return;
            case TryCatchStatement tryCatch:
                ClassifyStatements(tryCatch.TryStatements, findings, dynamicDepth);
                ClassifyStatements(tryCatch.CatchStatements, findings, dynamicDepth);
                return;

            // Writes.
            case InsertStatement insert:
                ClassifyModification(insert.InsertSpecification?.Target, "INSERT", findings);
                if (insert.InsertSpecification?.InsertSource is ExecuteInsertSource executeSource)
                {
                    // INSERT @t EXEC proc: the procedure decides.
                    ClassifyExecute(executeSource.Execute, findings, dynamicDepth);
                }

                return;
            case UpdateStatement update:
                ClassifyModification(update.UpdateSpecification?.Target, "UPDATE", findings);
                return;
            case DeleteStatement delete:
                ClassifyModification(delete.DeleteSpecification?.Target, "DELETE", findings);
                return;
            case MergeStatement merge:
                ClassifyModification(merge.MergeSpecification?.Target, "MERGE", findings);
                return;
            case TruncateTableStatement:
                findings.AddWrite("TRUNCATE TABLE");
                return;
            case BulkInsertStatement or InsertBulkStatement:
                findings.AddWrite("BULK INSERT");
                return;
            case UpdateTextStatement or WriteTextStatement:
                findings.AddWrite("text modification");
                return;
            case ExecuteStatement execute:
                ClassifyExecute(execute.ExecuteSpecification, findings, dynamicDepth);
                return;

            // Session state.
            case SetIdentityInsertStatement:
                findings.AddWrite("SET IDENTITY_INSERT");
                findings.AddPin("SET IDENTITY_INSERT");
                return;
            case SetTransactionIsolationLevelStatement isolation:
                if (isolation.Level is IsolationLevel.RepeatableRead or IsolationLevel.Serializable)
                {
                    findings.AddUnknown("isolation stronger than read committed");
                    findings.AddPin("isolation stronger than read committed");
                }
                else
                {
                    findings.AddReplay("SET TRANSACTION ISOLATION LEVEL");
                }

                return;
            case PredicateSetStatement predicateSet when predicateSet.IsOn && (predicateSet.Options & SetOptions.ImplicitTransactions) != 0:
                // Every later statement would open a transaction the router does not know about.
                findings.AddUnknown("transaction control");
                findings.AddPin("transaction control");
                return;
            case PredicateSetStatement predicateSet when (predicateSet.Options & ~(SetOptions.NoCount | SetOptions.ImplicitTransactions)) == 0:
                // SET NOCOUNT, SET IMPLICIT_TRANSACTIONS OFF (ON was handled above): every EF Core SaveChanges batch
                // starts with both. Mixed with other statements they take effect where the batch runs and change no
                // result a statement elsewhere reads (NOCOUNT only drops row-count messages): no pin.
                findings.AddReplay("SET option", benignWhenMixed: true);
                return;
            case SetOnOffStatement or SetCommandStatement or SetRowCountStatement or SetTextSizeStatement or SetErrorLevelStatement:
                findings.AddReplay("SET option");
                return;
            case UseStatement:
                findings.AddReplay("USE");
                return;
            case TransactionStatement:
                findings.AddUnknown("transaction control");
                findings.AddPin("transaction control");
                return;
            case DeclareCursorStatement or CursorStatement:
                findings.AddUnknown("cursor");
                findings.AddPin("cursor");
                return;
            case ExecuteAsStatement or RevertStatement or SetUserStatement:
                findings.AddUnknown("execution context");
                findings.AddPin("execution context");
                return;
            case OpenSymmetricKeyStatement or CloseSymmetricKeyStatement or OpenMasterKeyStatement or CloseMasterKeyStatement:
                findings.AddUnknown("encryption key");
                findings.AddPin("encryption key");
                return;

            default:
                string description = Describe(statement);
                if (IsDefinitionOrAdministration(statement))
                {
                    findings.AddWrite(description);
                }
                else
                {
                    findings.AddUnknown("unrecognised statement " + description);
                }

                return;
        }
    }

    // A table variable lives in the batch, not in the database: filling it is a read, even on a read-only replica.
    private static void ClassifyModification(TableReference? target, string statement, Findings findings)
    {
        if (target is not VariableTableReference)
        {
            findings.AddWrite(statement);
        }
    }

    private void ClassifyStatements(StatementList? list, Findings findings, int dynamicDepth)
    {
        if (list is null)
        {
            return;
        }

        foreach (TSqlStatement statement in list.Statements)
        {
            ClassifyStatement(statement, findings, dynamicDepth);
        }
    }

    private void ClassifyExecute(ExecuteSpecification? specification, Findings findings, int dynamicDepth)
    {
        if (specification?.ExecutableEntity is null)
        {
            findings.AddUnknown("EXECUTE");
            return;
        }

        if (specification.LinkedServer is not null)
        {
            findings.AddUnknown("EXECUTE AT a linked server");
            return;
        }

        switch (specification.ExecutableEntity)
        {
            case ExecutableStringList stringList:
                ClassifyDynamicSql(Concatenate(stringList.Strings), findings, dynamicDepth);
                return;
            case ExecutableProcedureReference procedure when procedure.ProcedureReference?.ProcedureReference?.Name is { } name:
                if (procedure.AdHocDataSource is not null)
                {
                    findings.AddUnknown("EXECUTE on a remote data source");
                }
                else if (IsSystemProcedure(name, "sp_executesql"))
                {
                    ClassifyDynamicSql(StatementArgument(procedure.Parameters), findings, dynamicDepth);
                }
                else
                {
                    ClassifyProcedureCall(name, findings);
                }

                return;
            default:
                findings.AddUnknown("EXECUTE of a procedure variable");
                return;
        }
    }

    private void ClassifyProcedureCall(SchemaObjectName name, Findings findings)
    {
        string? baseName = name.BaseIdentifier?.Value;
        if (baseName is null)
        {
            findings.AddWrite(StoredProcedureDetail);
            return;
        }

        if (baseName.Equals("sp_getapplock", StringComparison.OrdinalIgnoreCase)
            || baseName.Equals("sp_releaseapplock", StringComparison.OrdinalIgnoreCase))
        {
            findings.AddWrite("application lock");
            findings.AddPin("application lock");
            return;
        }

        if (IsSystemProcedure(name, "sp_set_session_context"))
        {
            // Values a replica would not see (row-level security reads them), and read-only keys cannot be set twice.
            findings.AddUnknown("session context");
            findings.AddPin("session context");
            return;
        }

        if (IsDeclaredReadOnly(name, baseName))
        {
            findings.AddRead("read-only stored procedure");
            return;
        }

        findings.AddWrite(StoredProcedureDetail);
    }

    private bool IsDeclaredReadOnly(SchemaObjectName name, string baseName)
    {
        // A procedure on another server is not the one the user declared; a database prefix is ignored on both sides
        // (db.dbo.GetOrders is the declared procedure, called from another database's context).
        if (name.ServerIdentifier is not null)
        {
            return false;
        }

        if (name.SchemaIdentifier is null)
        {
            return _readOnlyBaseNames.Contains(baseName);
        }

        return _readOnlyAnySchema.Contains(baseName) || _readOnlyQualified.Contains(name.SchemaIdentifier.Value + "." + baseName);
    }

    private void ClassifyDynamicSql(string? text, Findings findings, int dynamicDepth)
    {
        if (text is null)
        {
            findings.AddUnknown("dynamic SQL that is not a string literal");
            return;
        }

        if (dynamicDepth >= MaxDynamicSqlDepth)
        {
            findings.AddUnknown("dynamic SQL nested too deeply");
            return;
        }

        if (string.IsNullOrWhiteSpace(text))
        {
            findings.AddUnknown("empty dynamic SQL");
            return;
        }

        findings.MergeDynamic(Analyze(text, dynamicDepth + 1));
    }

    // EXEC ('SELECT ' + 'x'): the parts are only usable when every one is a literal.
    private static string? Concatenate(IList<ValueExpression> parts)
    {
        if (parts.Count == 1)
        {
            return (parts[0] as StringLiteral)?.Value;
        }

        var builder = new StringBuilder();
        foreach (ValueExpression part in parts)
        {
            if (part is not StringLiteral literal)
            {
                return null;
            }

            builder.Append(literal.Value);
        }

        return builder.ToString();
    }

    // sp_executesql's statement is its first argument, positional or named @stmt.
    private static string? StatementArgument(IList<ExecuteParameter> parameters)
    {
        foreach (ExecuteParameter parameter in parameters)
        {
            if (parameter.Variable is null || parameter.Variable.Name.Equals("@stmt", StringComparison.OrdinalIgnoreCase))
            {
                return (parameter.ParameterValue as StringLiteral)?.Value;
            }
        }

        return null;
    }

    // System procedures resolve from master/sys; a same-named procedure in another schema is the user's own.
    private static bool IsSystemProcedure(SchemaObjectName name, string systemName)
        => name.ServerIdentifier is null
            && name.BaseIdentifier?.Value.Equals(systemName, StringComparison.OrdinalIgnoreCase) == true
            && (name.SchemaIdentifier is null
                || name.SchemaIdentifier.Value.Equals("sys", StringComparison.OrdinalIgnoreCase)
                || name.SchemaIdentifier.Value.Equals("dbo", StringComparison.OrdinalIgnoreCase));

    // ScriptDom has some 250 definition statements (CREATE/ALTER/DROP of every object kind) without a common base type;
    // their type names are the stable, documented way to recognise them all, including kinds added by later versions.
    private static bool IsDefinitionOrAdministration(TSqlStatement statement)
    {
        if (statement is SecurityStatement or SecurityStatementBody80
            or AddSignatureStatement or AddSensitivityClassificationStatement or EnableDisableTriggerStatement
            or RenameEntityStatement or UpdateStatisticsStatement or CheckpointStatement or ReconfigureStatement
            or ShutdownStatement or CopyStatement
            or SendStatement or ReceiveStatement or BeginDialogStatement or BeginConversationTimerStatement
            or EndConversationStatement or MoveConversationStatement or GetConversationGroupStatement)
        {
            return true;
        }

        string typeName = statement.GetType().Name;
        return typeName.StartsWith("Create", StringComparison.Ordinal)
            || typeName.StartsWith("Alter", StringComparison.Ordinal)
            || typeName.StartsWith("Drop", StringComparison.Ordinal)
            || typeName.StartsWith("Backup", StringComparison.Ordinal)
            || typeName.StartsWith("Restore", StringComparison.Ordinal)
            || typeName.StartsWith("Kill", StringComparison.Ordinal);
    }

    // "CreateOrAlterProcedureStatement" -> "CREATE OR ALTER PROCEDURE": readable in a log, and free of any SQL text.
}
