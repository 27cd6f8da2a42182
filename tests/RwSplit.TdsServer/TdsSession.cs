using System;
using System.Buffers.Binary;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using System.Net.Sockets;
using System.Threading;
using System.Threading.Tasks;

namespace RwSplit.Tds;

/// <summary>One physical connection: PRELOGIN, LOGIN7, then requests until the client closes.</summary>
internal sealed class TdsSession
{
    // Token types (MS-TDS 2.2.7).
    private const byte ColMetadata = 0x81;
    private const byte Row = 0xD1;
    private const byte Done = 0xFD;
    private const byte DoneProc = 0xFE;
    private const byte DoneInProc = 0xFF;
    private const byte ErrorToken = 0xAA;
    private const byte InfoToken = 0xAB;
    private const byte LoginAck = 0xAD;
    private const byte EnvChange = 0xE3;
    private const byte ReturnStatus = 0x79;
    private const byte ReturnValue = 0xAC;

    // DONE status bits.
    private const ushort DoneMore = 0x0001;
    private const ushort DoneError = 0x0002;
    private const ushort DoneInTransaction = 0x0004;
    private const ushort DoneCount = 0x0010;
    private const ushort DoneAttention = 0x0020;

    private const ushort CurCmdSelect = 0xC1;
    private const ushort CurCmdInsert = 0xC3;

    // RPC procedure ids (MS-TDS 2.2.6.6).
    private const ushort SpExecuteSql = 10;
    private const ushort SpPrepare = 11;
    private const ushort SpExecute = 12;
    private const ushort SpPrepExec = 13;
    private const ushort SpUnprepare = 15;

    private static readonly string[] ProcedureIds =
    [
        "", "sp_cursor", "sp_cursoropen", "sp_cursorprepare", "sp_cursorexecute", "sp_cursorprepexec", "sp_cursorunprepare",
        "sp_cursorfetch", "sp_cursoroption", "sp_cursorclose", "sp_executesql", "sp_prepare", "sp_execute", "sp_prepexec",
        "sp_prepexecrpc", "sp_unprepare",
    ];

    private readonly TdsServer _server;
    private readonly Socket _socket;
    private readonly NetworkStream _stream;
    private readonly TdsMessageReader _reader;
    private readonly CancellationToken _stopping;
    private readonly Dictionary<int, string> _prepared = [];
    private readonly List<string> _savepoints = [];
    private Task<TdsMessage?>? _pendingRead;
    private int _packetSize = 4096;
    private byte _packetId;
    private string _database = "master";
    private long _transaction;
    private int _nextHandle = 1;
    private int _closed;

    public TdsSession(TdsServer server, Socket socket, int id, CancellationToken stopping)
    {
        _server = server;
        _socket = socket;
        _stream = new NetworkStream(socket, ownsSocket: false);
        _reader = new TdsMessageReader(_stream);
        _stopping = stopping;
        Id = id;
    }

    public int Id { get; }

    public TdsLogin? Login { get; private set; }

    private ushort Spid => (ushort)(50 + Id);

    public async Task RunAsync()
    {
        try
        {
            var preLogin = await NextAsync().ConfigureAwait(false);
            if (preLogin is null)
                return;
            if (preLogin.Type != TdsPacketType.PreLogin)
                throw new TdsProtocolException($"expected PRELOGIN (0x12) as the first message, got {preLogin.Type} (0x{(byte)preLogin.Type:x2})", preLogin.Payload, 0);
            var encryption = ReadPreLogin(preLogin.Payload);
            await SendAsync(PreLoginResponse()).ConfigureAwait(false);

            var login = await NextAsync().ConfigureAwait(false);
            if (login is null)
                return;
            if (login.Type != TdsPacketType.Login7)
                throw new TdsProtocolException($"expected LOGIN7 (0x10) after PRELOGIN, got {login.Type} (0x{(byte)login.Type:x2}); the server does not support TLS (use Encrypt=false)", login.Payload, 0);
            if (!await HandleLoginAsync(login.Payload, encryption).ConfigureAwait(false))
                return;

            while (true)
            {
                var message = await NextAsync().ConfigureAwait(false);
                if (message is null || !await DispatchAsync(message).ConfigureAwait(false))
                    return;
            }
        }
        catch (TdsProtocolException ex)
        {
            var request = new TdsRequest(_server.Name, Id, TdsRequestKind.Malformed, Login) { Text = ex.Message };
            request.Outcome = "connection closed";
            _server.Record(request, _database);
            _server.ReportProtocolError(this, ex.Message);
        }
        catch (Exception ex) when (ex is IOException or SocketException or ObjectDisposedException or OperationCanceledException)
        {
            // The client (or a fault switch, or disposal) closed the connection.
        }
#pragma warning disable CA1031 // A bug in the test server is reported, never swallowed silently nor left hanging.
        catch (Exception ex)
#pragma warning restore CA1031
        {
            _server.ReportProtocolError(this, "internal error of the test server: " + ex);
        }
        finally
        {
            Abort();
            _stream.Dispose();
            _socket.Dispose();
        }
    }

    /// <summary>Closes the connection (FIN after what was already sent).</summary>
    public void Abort()
    {
        if (Interlocked.Exchange(ref _closed, 1) != 0)
            return;
        try
        {
            _socket.Shutdown(SocketShutdown.Both);
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
        {
        }

        _socket.Close();
    }

    private async Task<TdsMessage?> NextAsync()
    {
        var read = _pendingRead ?? _reader.ReadAsync(_stopping);
        _pendingRead = null;
        return await read.ConfigureAwait(false);
    }

    // ---- PRELOGIN ----

    private static byte ReadPreLogin(byte[] payload)
    {
        var reader = new TdsPayloadReader(payload, "PRELOGIN");
        byte encryption = 0;
        var sawVersion = false;
        while (true)
        {
            var option = reader.Byte();
            if (option == 0xFF)
                break;
            var offset = reader.UInt16BigEndian();
            var length = reader.UInt16BigEndian();
            if (offset + length > payload.Length)
                throw reader.Fail($"option 0x{option:x2} points at {offset}+{length}, beyond the {payload.Length}-byte message");
            if (option == 0x00)
                sawVersion = length >= 6;
            if (option == 0x01 && length >= 1)
                encryption = payload[offset];
        }

        if (!sawVersion)
            throw reader.Fail("no VERSION option");
        return encryption;
    }

    private static TdsBuffer PreLoginResponse()
    {
        // Options: VERSION, ENCRYPTION, INSTOPT, THREADID (empty), MARS; then the terminator; then their data.
        var buffer = new TdsBuffer();
        const int tableLength = 5 * 5 + 1;
        var options = new (byte Option, byte[] Data)[]
        {
            (0x00, [16, 0, 0x03, 0xE8, 0, 0]), // 16.0.1000 (SQL Server 2022)
            (0x01, [0x02]), // ENCRYPT_NOT_SUP: no TLS, not even for the login
            (0x02, [0x00]), // instance matched
            (0x03, []),
            (0x04, [0x00]), // no MARS
        };
        var offset = tableLength;
        foreach (var (option, data) in options)
        {
            buffer.Byte(option);
            buffer.UInt16BigEndian((ushort)offset);
            buffer.UInt16BigEndian((ushort)data.Length);
            offset += data.Length;
        }

        buffer.Byte(0xFF);
        foreach (var (_, data) in options)
            buffer.Bytes(data);
        return buffer;
    }

    // ---- LOGIN7 ----

    private async Task<bool> HandleLoginAsync(byte[] payload, byte encryption)
    {
        var login = ReadLogin7(payload, encryption);
        Login = login;
        var request = new TdsRequest(_server.Name, Id, TdsRequestKind.Login, login);
        _server.Record(request, _database);

        var buffer = new TdsBuffer();
        if (_server.RequireReadOnlyIntent && !login.ReadOnlyIntent)
        {
            request.Outcome = "refused: no read-only intent (error 978)";
            WriteMessage(buffer, new TdsReplyPart.Message(978, 1, 14,
                $"The target database ('{DatabaseName(login)}') is in an availability group and is currently accessible for connections when the application intent is set to read only. For more information about application intent, see SQL Server Books Online.", IsError: true), "");
            WriteDone(buffer, Done, DoneError, 0, 0);
            await SendAsync(buffer).ConfigureAwait(false);
            return false;
        }

        if (_server.IsMissing(DatabaseName(login)))
        {
            request.Outcome = "refused: no such database (error 4060)";
            WriteMessage(buffer, new TdsReplyPart.Message(4060, 1, 11,
                $"Cannot open database \"{DatabaseName(login)}\" requested by the login. The login failed.", IsError: true), "");
            WriteDone(buffer, Done, DoneError, 0, 0);
            await SendAsync(buffer).ConfigureAwait(false);
            return false;
        }

        _database = DatabaseName(login);
        var requestedSize = login.PacketSize == 0 ? 4096 : Math.Clamp(login.PacketSize, 512, 32767);

        WriteEnvChangeStrings(buffer, 1, _database, "master");
        WriteMessage(buffer, new TdsReplyPart.Message(5701, 2, 0, $"Changed database context to '{_database}'.", IsError: false), "");
        buffer.Byte(EnvChange);
        var lengthAt = buffer.ReserveLength();
        buffer.Byte(7);
        buffer.BVarByte(TdsType.DefaultCollation);
        buffer.BVarByte([]);
        buffer.PatchLength(lengthAt);
        WriteEnvChangeStrings(buffer, 2, "us_english", "");
        WriteMessage(buffer, new TdsReplyPart.Message(5703, 1, 0, "Changed language setting to us_english.", IsError: false), "");

        buffer.Byte(LoginAck);
        lengthAt = buffer.ReserveLength();
        buffer.Byte(1); // SQL_TSQL
        buffer.Bytes([0x74, 0x00, 0x00, 0x04]); // TDS 7.4, big-endian as LOGINACK carries it
        buffer.BVarChar("Microsoft SQL Server");
        buffer.Bytes([16, 0, 0x03, 0xE8]); // 16.0.1000
        buffer.PatchLength(lengthAt);

        WriteEnvChangeStrings(buffer, 4, requestedSize.ToString(CultureInfo.InvariantCulture), "4096");
        WriteDone(buffer, Done, 0, 0, 0);
        request.Outcome = "logged in";
        await SendAsync(buffer).ConfigureAwait(false);
        _packetSize = requestedSize;
        return true;
    }

    private static string DatabaseName(TdsLogin login) => string.IsNullOrEmpty(login.Database) ? "master" : login.Database;

    private static TdsLogin ReadLogin7(byte[] payload, byte encryption)
    {
        var reader = new TdsPayloadReader(payload, "LOGIN7");
        var length = reader.UInt32();
        if (length > payload.Length || length < 94)
            throw reader.Fail($"Length field {length} does not fit the {payload.Length}-byte message (fixed part is 94 bytes)");
        var tdsVersion = reader.UInt32();
        var packetSize = reader.UInt32();
        var clientVersion = reader.UInt32();
        var clientPid = reader.UInt32();
        reader.UInt32(); // connection id
        var flags1 = reader.Byte();
        var flags2 = reader.Byte();
        var typeFlags = reader.Byte();
        var flags3 = reader.Byte();
        reader.Int32(); // time zone
        reader.UInt32(); // LCID

        string Field(string name)
        {
            var offset = reader.UInt16();
            var characters = reader.UInt16();
            if (characters == 0)
                return "";
            if (offset + characters * 2 > length)
                throw reader.Fail($"{name} at {offset} with {characters} characters runs past the {length}-byte login");
            return System.Text.Encoding.Unicode.GetString(payload, offset, characters * 2);
        }

        var host = Field("HostName");
        var user = Field("UserName");
        reader.Skip(4); // password (obfuscated; never journaled)
        var app = Field("AppName");
        var server = Field("ServerName");
        var extensionOffset = reader.UInt16();
        var extensionLength = reader.UInt16();
        var library = Field("CltIntName");
        var language = Field("Language");
        var database = Field("Database");

        var features = new List<byte>();
        if ((flags3 & 0x10) != 0 && extensionLength >= 4)
        {
            if (extensionOffset + 4 > length)
                throw reader.Fail($"the extension pointer at {extensionOffset} runs past the login");
            var featureOffset = BinaryPrimitives.ReadInt32LittleEndian(payload.AsSpan(extensionOffset));
            if (featureOffset < 94 || featureOffset >= length)
                throw reader.Fail($"FeatureExt offset {featureOffset} outside the login");
            var featureReader = new TdsPayloadReader(payload, "LOGIN7 FeatureExt") { Position = featureOffset };
            while (true)
            {
                var id = featureReader.Byte();
                if (id == 0xFF)
                    break;
                var dataLength = featureReader.UInt32();
                if (dataLength > featureReader.Remaining)
                    throw featureReader.Fail($"feature 0x{id:x2} claims {dataLength} bytes");
                featureReader.Skip((int)dataLength);
                features.Add(id);
            }
        }

        return new TdsLogin
        {
            TdsVersion = tdsVersion,
            PacketSize = (int)Math.Min(packetSize, int.MaxValue),
            ClientProgramVersion = clientVersion,
            ClientProcessId = clientPid,
            OptionFlags1 = flags1,
            OptionFlags2 = flags2,
            TypeFlags = typeFlags,
            OptionFlags3 = flags3,
            HostName = host,
            UserName = user,
            ApplicationName = app,
            ServerName = server,
            LibraryName = library,
            Language = language,
            Database = database,
            Features = features,
            EncryptionRequested = encryption,
        };
    }

    // ---- Requests ----

    private async Task<bool> DispatchAsync(TdsMessage message)
    {
        if (message.Ignored)
            return true; // the client abandoned the message part-way (MS-TDS 2.2.3.1.2): no reply
        switch (message.Type)
        {
            case TdsPacketType.Attention:
                RecordAttention("acknowledged after the reply");
                await SendAttentionAckAsync().ConfigureAwait(false);
                return true;
            case TdsPacketType.SqlBatch:
                return await HandleBatchAsync(message).ConfigureAwait(false);
            case TdsPacketType.Rpc:
                return await HandleRpcAsync(message).ConfigureAwait(false);
            case TdsPacketType.TransactionManager:
                return await HandleTransactionAsync(message).ConfigureAwait(false);
            default:
                throw new TdsProtocolException($"unexpected {message.Type} (0x{(byte)message.Type:x2}) message after login (bulk load, SSPI and federated authentication are not supported)", message.Payload, 0);
        }
    }

    private void RecordAttention(string outcome)
    {
        var request = new TdsRequest(_server.Name, Id, TdsRequestKind.Attention, Login) { TransactionDescriptor = _transaction };
        request.Outcome = outcome;
        _server.Record(request, _database);
    }

    private Task SendAttentionAckAsync()
    {
        var buffer = new TdsBuffer();
        WriteDone(buffer, Done, DoneAttention, 0, 0);
        return SendAsync(buffer);
    }

    /// <summary>Applies a connection reset the packet asked for; returns whether the reply starts with its ENVCHANGE.</summary>
    private bool ApplyReset(TdsMessage message)
    {
        var reset = (message.Status & PacketStatus.ResetConnection) != 0;
        var keepTransaction = (message.Status & PacketStatus.ResetConnectionKeepTransaction) != 0;
        if (!reset && !keepTransaction)
            return false;
        _database = DatabaseName(Login!);
        _prepared.Clear();
        if (reset)
        {
            _transaction = 0;
            _savepoints.Clear();
        }

        return true;
    }

    private static void WriteResetAck(TdsBuffer buffer)
    {
        buffer.Byte(EnvChange);
        var at = buffer.ReserveLength();
        buffer.Byte(18);
        buffer.Byte(0);
        buffer.Byte(0);
        buffer.PatchLength(at);
    }

    /// <summary>Reads ALL_HEADERS (MS-TDS 2.2.5.3) and returns the transaction descriptor header's value (0 if none).</summary>
    private static long ReadAllHeaders(TdsPayloadReader reader)
    {
        var start = reader.Position;
        var total = reader.UInt32();
        if (total < 4 || total > reader.Remaining + 4)
            throw reader.Fail($"ALL_HEADERS TotalLength {total} does not fit the message");
        var end = start + (int)total;
        long descriptor = 0;
        while (reader.Position < end)
        {
            var headerStart = reader.Position;
            var length = reader.UInt32();
            var type = reader.UInt16();
            if (length < 6 || headerStart + length > end)
                throw reader.Fail($"header of type {type} with length {length} does not fit ALL_HEADERS");
            if (type == 2)
            {
                if (length < 18)
                    throw reader.Fail($"transaction descriptor header of {length} bytes (needs 18)");
                descriptor = reader.Int64();
                reader.UInt32(); // outstanding request count
            }

            reader.Position = headerStart + (int)length;
        }

        return descriptor;
    }

    private async Task<bool> HandleBatchAsync(TdsMessage message)
    {
        var reader = new TdsPayloadReader(message.Payload, "SQL batch");
        var descriptor = ReadAllHeaders(reader);
        if (reader.Remaining % 2 != 0)
            throw reader.Fail("the batch text has an odd number of bytes (UCS-2 expected)");
        var text = reader.Unicode(reader.Remaining / 2);
        var reset = ApplyReset(message);
        var request = new TdsRequest(_server.Name, Id, TdsRequestKind.SqlBatch, Login)
        {
            Text = text,
            TransactionDescriptor = descriptor,
            ResetConnection = reset,
        };
        _server.Record(request, _database);
        var reply = _server.Resolve(request);
        var buffer = new TdsBuffer();
        if (reset)
            WriteResetAck(buffer);
        return await AnswerAsync([(request, reply)], buffer, rpc: false).ConfigureAwait(false);
    }

    private async Task<bool> HandleRpcAsync(TdsMessage message)
    {
        var reader = new TdsPayloadReader(message.Payload, "RPC request");
        var descriptor = ReadAllHeaders(reader);
        var reset = ApplyReset(message);
        var calls = new List<(TdsRequest Request, TdsReply Reply)>();
        var first = true;
        while (!reader.AtEnd)
        {
            var request = ReadRpc(reader, descriptor, reset && first);
            first = false;
            _server.Record(request, _database);
            calls.Add((request, ResolveRpc(request)));
            if (!reader.AtEnd)
            {
                var separator = reader.Byte();
                if (separator is not (0xFF or 0xFE))
                {
                    reader.Position--;
                    throw reader.Fail($"expected an RPC batch separator (0xFF) after the parameters, got 0x{separator:x2}");
                }
            }
        }

        if (calls.Count == 0)
            throw reader.Fail("no RPC in the request");
        var buffer = new TdsBuffer();
        if (reset)
            WriteResetAck(buffer);
        return await AnswerAsync(calls, buffer, rpc: true).ConfigureAwait(false);
    }

    private TdsRequest ReadRpc(TdsPayloadReader reader, long descriptor, bool reset)
    {
        string procedure;
        ushort procedureId = 0;
        var nameLength = reader.UInt16();
        if (nameLength == 0xFFFF)
        {
            procedureId = reader.UInt16();
            procedure = procedureId < ProcedureIds.Length && procedureId > 0 ? ProcedureIds[procedureId] : $"procedure id {procedureId}";
        }
        else
        {
            procedure = reader.Unicode(nameLength);
        }

        reader.UInt16(); // option flags (recompile, no metadata)
        var parameters = new List<TdsParameter>();
        var types = new List<TdsType>();
        while (!reader.AtEnd && reader.PeekByte() is not (0xFF or 0xFE))
        {
            var name = reader.BVarChar();
            var status = reader.Byte();
            var type = TdsType.Read(reader);
            var value = type.ReadValue(reader);
            parameters.Add(new TdsParameter(name, type, value, (status & 0x01) != 0));
        }

        string? text = null;
        string? declarations = null;
        var user = parameters;
        string Statement(int index) => index < parameters.Count && parameters[index].Value is string s
            ? s
            : throw reader.Fail($"{procedure} expects the statement text as parameter {index + 1}");
        switch (procedureId)
        {
            case SpExecuteSql:
                text = Statement(0);
                declarations = parameters.Count > 1 ? parameters[1].Value as string : null;
                user = parameters.Count > 2 ? parameters[2..] : [];
                break;
            case SpPrepExec:
            case SpPrepare:
                text = Statement(2);
                declarations = parameters[1].Value as string;
                user = procedureId == SpPrepExec ? parameters[3..] : [];
                break;
            case SpExecute:
            {
                var handle = parameters.Count > 0 && parameters[0].Value is int h ? h : throw reader.Fail("sp_execute expects the handle first");
                text = _prepared.GetValueOrDefault(handle); // null: unknown handle, answered with error 8179
                user = parameters[1..];
                break;
            }
        }

        return new TdsRequest(_server.Name, Id, TdsRequestKind.Rpc, Login)
        {
            Procedure = procedure,
            Text = text,
            ParameterDeclarations = declarations,
            Parameters = user,
            TransactionDescriptor = descriptor,
            ResetConnection = reset,
            SystemParameters = parameters,
            ProcedureId = procedureId,
        };
    }

    private TdsReply ResolveRpc(TdsRequest request)
    {
        switch (request.ProcedureId)
        {
            case SpPrepExec or SpPrepare:
            {
                var handle = _nextHandle++;
                _prepared[handle] = request.Text!;
                request.PreparedHandle = handle; // returned in the first (unnamed) output parameter
                if (request.ProcedureId == SpPrepare)
                {
                    request.Outcome = "built-in: sp_prepare";
                    return TdsReply.Empty;
                }

                return _server.Resolve(request);
            }

            case SpUnprepare:
                if (request.SystemParameters.Count > 0 && request.SystemParameters[0].Value is int h)
                    _prepared.Remove(h);
                request.Outcome = "built-in: sp_unprepare";
                return TdsReply.Empty;
            case SpExecute when request.Text is null:
                request.Outcome = "unknown handle";
                return TdsReply.Error(8179, $"Could not find prepared statement with handle {request.SystemParameters[0].Value}.");
            default:
                return _server.Resolve(request);
        }
    }

    // ---- Transaction manager requests ----

    private async Task<bool> HandleTransactionAsync(TdsMessage message)
    {
        var reader = new TdsPayloadReader(message.Payload, "transaction manager request");
        var descriptor = ReadAllHeaders(reader);
        var reset = ApplyReset(message);
        var type = reader.UInt16();
        TdsRequestKind kind;
        var name = "";
        byte? isolation = null;
        var beginAfter = false;
        byte beginIsolation = 0;
        switch (type)
        {
            case 5:
                kind = TdsRequestKind.BeginTransaction;
                isolation = reader.Byte();
                name = TransactionName(reader);
                break;
            case 7 or 8:
                kind = type == 7 ? TdsRequestKind.CommitTransaction : TdsRequestKind.RollbackTransaction;
                name = TransactionName(reader);
                var flags = reader.Byte();
                if ((flags & 0x01) != 0)
                {
                    beginAfter = true;
                    beginIsolation = reader.Byte();
                    TransactionName(reader);
                }

                break;
            case 9:
                kind = TdsRequestKind.SaveTransaction;
                name = TransactionName(reader);
                break;
            case 0 or 1 or 6:
                kind = TdsRequestKind.OtherTransactionRequest;
                name = type switch { 0 => "TM_GET_DTC_ADDRESS", 1 => "TM_PROPAGATE_XACT", _ => "TM_PROMOTE_XACT" };
                reader.Position = reader.Data.Length;
                break;
            default:
                reader.Position -= 2;
                throw reader.Fail($"unknown transaction manager request type {type}");
        }

        if (!reader.AtEnd)
            throw reader.Fail($"{reader.Remaining} unexpected bytes after the {kind} request");

        var request = new TdsRequest(_server.Name, Id, kind, Login)
        {
            Text = name,
            TransactionDescriptor = descriptor,
            IsolationLevel = isolation ?? (beginAfter ? beginIsolation : null),
            ResetConnection = reset,
        };
        _server.Record(request, _database);

        var buffer = new TdsBuffer();
        if (reset)
            WriteResetAck(buffer);

        // A rule may delay, fail or cut a transaction request; otherwise the built-in semantics apply.
        var rule = _server.FindRule(request);
        TdsReply? scripted = null;
        if (rule is not null)
        {
            try
            {
                scripted = rule.Reply(request);
            }
#pragma warning disable CA1031 // reported, answered with an error
            catch (Exception ex)
#pragma warning restore CA1031
            {
                _server.ReportScriptError(request, ex);
                scripted = TdsReply.Error(50000, $"The reply script of rule '{rule.Match.Description}' threw {ex.GetType().Name}: {ex.Message}");
            }
        }

        var delay = _server.ResponseDelay + (scripted?.Delay ?? TimeSpan.Zero);
        if (delay > TimeSpan.Zero && await WaitForAttentionAsync(delay).ConfigureAwait(false))
        {
            request.Outcome = "cancelled by attention";
            await SendAttentionAckAsync().ConfigureAwait(false);
            return true;
        }

        if (scripted is { Fault: TdsFault.DropOnReceipt })
        {
            request.Outcome = "dropped on receipt";
            return false;
        }

        if (scripted is not null && scripted.Parts.Exists(p => p is TdsReplyPart.Message { IsError: true }))
        {
            request.Outcome = "rule: " + rule!.Match.Description;
            foreach (var part in scripted.Parts)
            {
                if (part is TdsReplyPart.Message m)
                    WriteMessage(buffer, m, "");
            }

            WriteDone(buffer, Done, (ushort)(DoneError | InTransaction()), 0, 0);
            await SendAsync(buffer).ConfigureAwait(false);
            return true;
        }

        ApplyTransaction(request, kind, name, beginAfter, buffer);
        if (scripted is { Fault: TdsFault.LoseReply })
        {
            request.Outcome += "; reply lost";
            return false;
        }

        await SendAsync(buffer).ConfigureAwait(false);
        return true;
    }

    /// <summary>Transaction and savepoint names are a byte count (not a character count) and UCS-2.</summary>
    private static string TransactionName(TdsPayloadReader reader)
    {
        var bytes = reader.Byte();
        if (bytes % 2 != 0)
            throw reader.Fail($"a transaction name of {bytes} bytes (UCS-2 takes an even number)");
        return reader.Unicode(bytes / 2);
    }

    private ushort InTransaction() => _transaction != 0 ? DoneInTransaction : (ushort)0;

    private void ApplyTransaction(TdsRequest request, TdsRequestKind kind, string name, bool beginAfter, TdsBuffer buffer)
    {
        void Fail(int number, string text, string outcome)
        {
            WriteMessage(buffer, new TdsReplyPart.Message(number, 1, 16, text, IsError: true), "");
            WriteDone(buffer, Done, (ushort)(DoneError | InTransaction()), 0, 0);
            request.Outcome = outcome;
        }

        void Begin()
        {
            var descriptor = TdsServer.NextTransactionDescriptor();
            _transaction = descriptor;
            _savepoints.Clear();
            WriteEnvChangeTransaction(buffer, 8, descriptor, 0);
            request.StartedTransaction = descriptor;
        }

        switch (kind)
        {
            case TdsRequestKind.BeginTransaction:
                if (_transaction != 0)
                {
                    Fail(50000, "The test server does not nest transactions: a transaction is already active on this connection.", "refused: nested");
                    return;
                }

                Begin();
                request.Outcome = "began";
                break;
            case TdsRequestKind.CommitTransaction:
                if (_transaction == 0)
                {
                    Fail(3902, "The COMMIT TRANSACTION request has no corresponding BEGIN TRANSACTION.", "refused: no transaction");
                    return;
                }

                WriteEnvChangeTransaction(buffer, 9, 0, _transaction);
                _transaction = 0;
                request.Outcome = "committed";
                if (beginAfter)
                    Begin();
                break;
            case TdsRequestKind.RollbackTransaction when name.Length > 0:
            {
                var index = _savepoints.LastIndexOf(name);
                if (_transaction == 0 || index < 0)
                {
                    Fail(6401, $"Cannot roll back {name}. No transaction or savepoint of that name was found.", "refused: no such savepoint");
                    return;
                }

                _savepoints.RemoveRange(index + 1, _savepoints.Count - index - 1);
                request.Outcome = "rolled back to savepoint";
                break;
            }

            case TdsRequestKind.RollbackTransaction:
                if (_transaction == 0)
                {
                    Fail(3903, "The ROLLBACK TRANSACTION request has no corresponding BEGIN TRANSACTION.", "refused: no transaction");
                    return;
                }

                WriteEnvChangeTransaction(buffer, 10, 0, _transaction);
                _transaction = 0;
                _savepoints.Clear();
                request.Outcome = "rolled back";
                if (beginAfter)
                    Begin();
                break;
            case TdsRequestKind.SaveTransaction:
                if (_transaction == 0)
                {
                    Fail(628, "Cannot issue SAVE TRANSACTION when there is no active transaction.", "refused: no transaction");
                    return;
                }

                _savepoints.Add(name);
                request.Outcome = "savepoint";
                break;
            default:
                Fail(50000, $"{name} is not supported by the test server (no distributed transactions).", "refused: distributed");
                return;
        }

        WriteDone(buffer, Done, InTransaction(), 0, 0);
    }

    // ---- Replies ----

    /// <summary>Waits, unless an attention arrives first (then true). Any other message meanwhile is a protocol error.</summary>
    private async Task<bool> WaitForAttentionAsync(TimeSpan delay)
    {
        _pendingRead ??= _reader.ReadAsync(_stopping);
        var wait = Task.Delay(delay, _stopping);
        if (await Task.WhenAny(_pendingRead, wait).ConfigureAwait(false) == wait)
        {
            await wait.ConfigureAwait(false);
            return false;
        }

        var message = await _pendingRead.ConfigureAwait(false);
        _pendingRead = null;
        if (message is null)
            throw new IOException("the client closed the connection while waiting for the reply");
        if (message.Type == TdsPacketType.Attention)
        {
            RecordAttention("cancelled the request in progress");
            return true;
        }

        throw new TdsProtocolException($"a {message.Type} message arrived while the previous request was still being answered (MARS is off)", message.Payload, 0);
    }

    /// <summary>Answers one batch or the RPCs of one message; false when a fault closed the connection.</summary>
    private async Task<bool> AnswerAsync(List<(TdsRequest Request, TdsReply Reply)> calls, TdsBuffer buffer, bool rpc)
    {
        int? cutAt = null;
        var closeAfter = false;
        for (var i = 0; i < calls.Count; i++)
        {
            var (request, reply) = calls[i];
            var delay = _server.ResponseDelay + reply.Delay;
            if (delay > TimeSpan.Zero && await WaitForAttentionAsync(delay).ConfigureAwait(false))
            {
                request.Outcome += "; cancelled by attention";
                await SendAttentionAckAsync().ConfigureAwait(false);
                return true;
            }

            if (reply.Fault is TdsFault.DropOnReceipt or TdsFault.LoseReply)
            {
                request.Outcome += reply.Fault == TdsFault.DropOnReceipt ? "; dropped on receipt" : "; reply lost";
                if (buffer.Length > 0 && i > 0)
                    await SendAsync(buffer, buffer.Length).ConfigureAwait(false);
                return false;
            }

            var last = i == calls.Count - 1;
            var start = buffer.Length;
            try
            {
                cutAt = WriteReply(buffer, request, reply, rpc, last, out closeAfter);
            }
            catch (Exception ex) when (ex is ArgumentException or NotSupportedException or InvalidCastException or FormatException or OverflowException)
            {
                _server.ReportScriptError(request, ex);
                buffer.Truncate(start);
                WriteReply(buffer, request, TdsReply.Error(50000, $"Test server '{_server.Name}' could not encode the scripted reply: {ex.Message}"), rpc, last, out _);
                request.Outcome += "; script error";
            }

            if (cutAt is not null)
            {
                if (reply.Fault == TdsFault.StallAfterRows)
                {
                    request.Outcome += $"; stalled after {reply.DropAfterRowCount} rows";
                    await SendAsync(buffer, cutAt).ConfigureAwait(false);
                    if (!await WaitForAttentionAsync(Timeout.InfiniteTimeSpan).ConfigureAwait(false))
                        return false;
                    request.Outcome += "; cancelled by attention";
                    await SendAttentionAckAsync().ConfigureAwait(false);
                    return true;
                }

                request.Outcome += $"; dropped after {reply.DropAfterRowCount} rows";
                break;
            }
        }

        await SendAsync(buffer, cutAt).ConfigureAwait(false);
        return cutAt is null && !closeAfter;
    }

    /// <summary>Writes one request's reply; returns the cut offset of a DropAfterRows fault.</summary>
    private int? WriteReply(TdsBuffer buffer, TdsRequest request, TdsReply reply, bool rpc, bool lastInMessage, out bool closeAfter)
    {
        closeAfter = false;
        int? cutAt = null;
        var anyError = false;
        var doneToken = rpc ? DoneInProc : Done;
        var lastDone = -1;
        var pendingDone = true; // a final DONE is still owed (no part, or the last part wrote none)
        var firstResultSet = true;
        var cutsRows = reply.Fault is TdsFault.DropAfterRows or TdsFault.StallAfterRows;
        foreach (var part in reply.Parts)
        {
            switch (part)
            {
                case TdsReplyPart.ResultSet set:
                {
                    WriteColumnMetadata(buffer, set.Rows);
                    var rows = 0;
                    foreach (var row in set.Rows.Rows)
                    {
                        if (firstResultSet && cutsRows && rows == reply.DropAfterRowCount)
                            cutAt = buffer.Length;
                        buffer.Byte(Row);
                        for (var c = 0; c < row.Length; c++)
                            set.Rows.Columns[c].Type.WriteValue(buffer, row[c]);
                        rows++;
                    }

                    if (firstResultSet && cutsRows && cutAt is null)
                        cutAt = buffer.Length;
                    firstResultSet = false;
                    lastDone = buffer.Length;
                    WriteDone(buffer, doneToken, (ushort)(DoneMore | DoneCount | InTransaction()), CurCmdSelect, rows);
                    pendingDone = false;
                    break;
                }

                case TdsReplyPart.Count count:
                    lastDone = buffer.Length;
                    WriteDone(buffer, doneToken, (ushort)(DoneMore | DoneCount | InTransaction()), CurCmdInsert, count.Rows);
                    pendingDone = false;
                    break;
                case TdsReplyPart.Message message:
                    WriteMessage(buffer, message, rpc ? request.Procedure ?? "" : "");
                    if (message.IsError)
                    {
                        anyError = true;
                        closeAfter |= message.Severity >= 20;
                        lastDone = buffer.Length;
                        WriteDone(buffer, doneToken, (ushort)(DoneMore | DoneError | InTransaction()), 0, 0);
                        pendingDone = false;
                    }
                    else
                    {
                        pendingDone = true;
                    }

                    break;
                case TdsReplyPart.Database database:
                {
                    var old = _database;
                    _database = database.Name;
                    WriteEnvChangeStrings(buffer, 1, database.Name, old);
                    WriteMessage(buffer, new TdsReplyPart.Message(5701, 1, 0, $"Changed database context to '{database.Name}'.", IsError: false), "");
                    lastDone = buffer.Length;
                    WriteDone(buffer, doneToken, (ushort)(DoneMore | InTransaction()), 0, 0);
                    pendingDone = false;
                    break;
                }
            }
        }

        if (rpc)
        {
            buffer.Byte(ReturnStatus);
            buffer.Int32(reply.ReturnStatus);
            WriteReturnValues(buffer, request, reply);
            WriteDone(buffer, DoneProc, (ushort)((lastInMessage ? 0 : DoneMore) | (anyError ? DoneError : 0) | InTransaction()), 0, 0);
        }
        else if (pendingDone)
        {
            WriteDone(buffer, Done, (ushort)((anyError ? DoneError : 0) | InTransaction()), 0, 0);
        }
        else
        {
            // The last DONE of the batch ends the reply.
            buffer.PatchUInt16(lastDone + 1, (ushort)(buffer.ReadUInt16At(lastDone + 1) & ~DoneMore));
        }

        return cutAt;
    }

    private static void WriteReturnValues(TdsBuffer buffer, TdsRequest request, TdsReply reply)
    {
        var parameters = request.SystemParameters;
        for (var ordinal = 0; ordinal < parameters.Count; ordinal++)
        {
            var parameter = parameters[ordinal];
            if (!parameter.IsOutput)
                continue;
            var value = ordinal == 0 && request.PreparedHandle is { } handle ? handle
                : reply.Outputs.TryGetValue(parameter.Name, out var scripted) ? scripted
                : parameter.Value;
            buffer.Byte(ReturnValue);
            buffer.UInt16((ushort)ordinal);
            buffer.BVarChar(parameter.Name);
            buffer.Byte(0x01); // output parameter
            buffer.UInt32(0); // user type
            buffer.UInt16(0x0001); // nullable
            parameter.Type.WriteTypeInfo(buffer);
            parameter.Type.WriteValue(buffer, value);
        }
    }

    private static void WriteColumnMetadata(TdsBuffer buffer, TdsResultSet set)
    {
        buffer.Byte(ColMetadata);
        buffer.UInt16((ushort)set.Columns.Count);
        foreach (var column in set.Columns)
        {
            buffer.UInt32(0); // user type
            buffer.UInt16(0x0001); // nullable, read-only
            column.Type.WriteTypeInfo(buffer);
            buffer.BVarChar(column.Name);
        }
    }

    private void WriteMessage(TdsBuffer buffer, TdsReplyPart.Message message, string procedure)
    {
        buffer.Byte(message.IsError ? ErrorToken : InfoToken);
        var at = buffer.ReserveLength();
        buffer.Int32(message.Number);
        buffer.Byte(message.State);
        buffer.Byte(message.Severity);
        buffer.UsVarChar(message.Text);
        buffer.BVarChar(_server.Name);
        buffer.BVarChar(procedure.Length > 128 ? procedure[..128] : procedure);
        buffer.Int32(1); // line number
        buffer.PatchLength(at);
    }

    private static void WriteDone(TdsBuffer buffer, byte token, ushort status, ushort command, long rows)
    {
        buffer.Byte(token);
        buffer.UInt16(status);
        buffer.UInt16(command);
        buffer.Int64(rows);
    }

    private static void WriteEnvChangeStrings(TdsBuffer buffer, byte type, string newValue, string oldValue)
    {
        buffer.Byte(EnvChange);
        var at = buffer.ReserveLength();
        buffer.Byte(type);
        buffer.BVarChar(newValue);
        buffer.BVarChar(oldValue);
        buffer.PatchLength(at);
    }

    private static void WriteEnvChangeTransaction(TdsBuffer buffer, byte type, long newDescriptor, long oldDescriptor)
    {
        buffer.Byte(EnvChange);
        var at = buffer.ReserveLength();
        buffer.Byte(type);
        Span<byte> bytes = stackalloc byte[8];
        if (newDescriptor != 0)
        {
            BinaryPrimitives.WriteInt64LittleEndian(bytes, newDescriptor);
            buffer.BVarByte(bytes);
        }
        else
        {
            buffer.Byte(0);
        }

        if (oldDescriptor != 0)
        {
            BinaryPrimitives.WriteInt64LittleEndian(bytes, oldDescriptor);
            buffer.BVarByte(bytes);
        }
        else
        {
            buffer.Byte(0);
        }

        buffer.PatchLength(at);
    }

    /// <summary>
    /// Sends a token stream as tabular-result packets of at most the negotiated size. With <paramref name="cutAt"/>,
    /// only that many bytes go out, none marked end-of-message (the caller then closes the connection).
    /// </summary>
    private async Task SendAsync(TdsBuffer buffer, int? cutAt = null)
    {
        var data = buffer.Memory;
        var limit = cutAt ?? data.Length;
        var maxBody = _packetSize - TdsMessageReader.HeaderLength;
        var offset = 0;
        do
        {
            var chunk = Math.Min(maxBody, limit - offset);
            var last = cutAt is null && offset + chunk >= data.Length;
            var packet = new byte[TdsMessageReader.HeaderLength + chunk];
            packet[0] = (byte)TdsPacketType.TabularResult;
            packet[1] = last ? PacketStatus.EndOfMessage : (byte)0;
            BinaryPrimitives.WriteUInt16BigEndian(packet.AsSpan(2), (ushort)packet.Length);
            BinaryPrimitives.WriteUInt16BigEndian(packet.AsSpan(4), Spid);
            packet[6] = ++_packetId;
            data.Span.Slice(offset, chunk).CopyTo(packet.AsSpan(TdsMessageReader.HeaderLength));
            await _stream.WriteAsync(packet, _stopping).ConfigureAwait(false);
            offset += chunk;
        }
        while (offset < limit);

        await _stream.FlushAsync(_stopping).ConfigureAwait(false);
    }
}
