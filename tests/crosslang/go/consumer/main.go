// Command crosslang-go-consumer reads every topic mesh-adapter writes (the
// topics of the event options in protos/, plus the dead-letter topic) from the
// beginning to the end offsets of the moment it starts, with IBM/sarama. Each
// record is decoded as a CloudEvent by the CloudEvents SDK's Kafka binding,
// its data parsed as the typed protobuf event, and the key, the ce_* attributes
// and traceparent checked against the protos. It prints one JSON object: every
// record read and every violation found (the Java consumer prints the same).
//
//	crosslang-go-consumer --bootstrap 127.0.0.1:19092 [--prefix t1234.]
//
// Exit status 0 when it could read (violations are part of the JSON), 1 when
// it could not, 2 on usage errors.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/IBM/sarama"
	"github.com/cloudevents/sdk-go/protocol/kafka_sarama/v2"
	"github.com/cloudevents/sdk-go/v2/binding"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	optionsv1 "meshadapter.test/crosslang/gen/meshadapter/options/v1"
	// Linked for their descriptors: the event messages and their options.
	_ "meshadapter.test/crosslang/gen/octospine/v1"
	_ "meshadapter.test/crosslang/gen/openframe/v1"
)

const deadLetterType = "dev.mesh-adapter.deadletter"

var traceparentRE = regexp.MustCompile(`^00-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}$`)

// route is one event message and its (meshadapter.options.v1.event) option.
type route struct {
	option  *optionsv1.EventRoute
	message protoreflect.MessageType
}

type seenRecord struct {
	Topic     string  `json:"topic"`
	Partition int32   `json:"partition"`
	Offset    int64   `json:"offset"`
	Key       *string `json:"key"`
	CeID      string  `json:"ce_id,omitempty"`
	CeType    string  `json:"ce_type,omitempty"`
	Message   string  `json:"message,omitempty"`
}

type result struct {
	Records    []*seenRecord `json:"records"`
	Violations []string      `json:"violations"`
}

func main() {
	bootstrap := flag.String("bootstrap", "", "Kafka bootstrap server, host:port (required)")
	prefix := flag.String("prefix", "", "topic prefix of the adapter's configuration")
	deadLetter := flag.String("dead-letter-topic", "meshadapter.deadletter", "dead-letter topic (before the prefix)")
	timeout := flag.Duration("timeout", 30*time.Second, "bound on the whole read")
	flag.Parse()
	if *bootstrap == "" || flag.NArg() != 0 {
		flag.Usage()
		os.Exit(2)
	}
	res, err := readAll(*bootstrap, *prefix, *prefix+*deadLetter, *timeout)
	if err != nil {
		fmt.Fprintf(os.Stderr, "event consumer: %v\n", err)
		os.Exit(1)
	}
	out := json.NewEncoder(os.Stdout)
	out.SetIndent("", "  ")
	if err := out.Encode(res); err != nil {
		fmt.Fprintf(os.Stderr, "event consumer: %v\n", err)
		os.Exit(1)
	}
}

// routesByTopic maps each default topic (before any prefix) to its route, from
// the generated descriptors of every message carrying the event option.
func routesByTopic() map[string]route {
	routes := map[string]route{}
	protoregistry.GlobalTypes.RangeMessages(func(mt protoreflect.MessageType) bool {
		opts := mt.Descriptor().Options()
		if opts == nil || !proto.HasExtension(opts, optionsv1.E_Event) {
			return true
		}
		option := proto.GetExtension(opts, optionsv1.E_Event).(*optionsv1.EventRoute)
		for _, topic := range option.GetTopics() {
			routes[topic] = route{option: option, message: mt}
		}
		return true
	})
	return routes
}

func readAll(bootstrap, prefix, deadLetter string, timeout time.Duration) (*result, error) {
	routes := map[string]route{}
	for topic, r := range routesByTopic() {
		routes[prefix+topic] = r
	}
	if len(routes) == 0 {
		return nil, fmt.Errorf("no event routes in the generated code: are the stubs current?")
	}
	config := sarama.NewConfig()
	config.ClientID = "crosslang-go-consumer"
	config.Metadata.AllowAutoTopicCreation = false
	config.Consumer.Return.Errors = true
	client, err := sarama.NewClient([]string{bootstrap}, config)
	if err != nil {
		return nil, err
	}
	defer client.Close()
	consumer, err := sarama.NewConsumerFromClient(client)
	if err != nil {
		return nil, err
	}
	defer consumer.Close()

	topics := []string{deadLetter}
	for topic := range routes {
		topics = append(topics, topic)
	}
	sort.Strings(topics)
	res := &result{Records: []*seenRecord{}, Violations: []string{}}
	deadline := time.Now().Add(timeout)
	for _, topic := range topics {
		partitions, err := client.Partitions(topic)
		if errors.Is(err, sarama.ErrUnknownTopicOrPartition) {
			continue // nothing written there
		} else if err != nil {
			return nil, fmt.Errorf("partitions of %s: %w", topic, err)
		}
		for _, partition := range partitions {
			end, err := client.GetOffset(topic, partition, sarama.OffsetNewest)
			if err != nil {
				return nil, err
			}
			if end == 0 {
				continue
			}
			pc, err := consumer.ConsumePartition(topic, partition, sarama.OffsetOldest)
			if err != nil {
				return nil, err
			}
			for done := false; !done; {
				select {
				case msg := <-pc.Messages():
					if msg.Offset < end {
						r, ok := routes[topic]
						check(res, msg, r, ok)
					}
					done = msg.Offset >= end-1
				case err := <-pc.Errors():
					pc.Close()
					return nil, err
				case <-time.After(time.Until(deadline)):
					pc.Close()
					return nil, fmt.Errorf("%s/%d: end offset %d not reached within %s", topic, partition, end, timeout)
				}
			}
			pc.Close()
		}
	}
	return res, nil
}

// check checks one record; isEvent is false for the dead-letter topic.
func check(res *result, msg *sarama.ConsumerMessage, r route, isEvent bool) {
	where := fmt.Sprintf("%s/%d@%d", msg.Topic, msg.Partition, msg.Offset)
	violate := func(format string, args ...any) {
		res.Violations = append(res.Violations, where+": "+fmt.Sprintf(format, args...))
	}
	expect := func(what, want, got string) {
		if want != got {
			violate("%s is %s, expected %s", what, got, want)
		}
	}
	seen := &seenRecord{Topic: msg.Topic, Partition: msg.Partition, Offset: msg.Offset}
	if msg.Key != nil {
		key := string(msg.Key)
		seen.Key = &key
	}
	res.Records = append(res.Records, seen)

	event, err := binding.ToEvent(context.Background(), kafka_sarama.NewMessageFromConsumerMessage(msg))
	if err != nil {
		violate("not a CloudEvent: %v", err)
		return
	}
	if err := event.Validate(); err != nil {
		violate("invalid CloudEvent: %v", err)
		return
	}
	seen.CeID, seen.CeType = event.ID(), event.Type()
	expect("ce_specversion", "1.0", event.SpecVersion())
	if u := event.Context.GetSource(); !strings.Contains(u, "://") {
		violate("ce_source %s is not an absolute URI", u)
	}
	headers := map[string]string{}
	for _, h := range msg.Headers {
		headers[string(h.Key)] = string(h.Value)
	}

	if !isEvent { // dead letter: the raw payload, the cause in headers
		expect("ce_type", deadLetterType, event.Type())
		expect("content-type", "application/octet-stream", event.DataContentType())
		if _, ok := headers["dlq_reason"]; !ok {
			violate("dlq_reason header missing")
		}
		return
	}

	fullName := string(r.message.Descriptor().FullName())
	expect("content-type", "application/protobuf; proto="+fullName, event.DataContentType())
	if event.Time().IsZero() {
		violate("ce_time missing")
	}
	if tp, ok := headers["traceparent"]; !ok {
		violate("traceparent header missing")
	} else if m := traceparentRE.FindStringSubmatch(tp); m == nil || m[1] == strings.Repeat("0", 32) {
		violate("traceparent %s is not a W3C trace context", tp)
	}
	data := r.message.New().Interface()
	if err := proto.Unmarshal(event.Data(), data); err != nil {
		violate("data is not a %s: %v", fullName, err)
		return
	}
	seen.Message = fullName
	if len(data.ProtoReflect().GetUnknown()) > 0 {
		violate("data has fields %s does not know", fullName)
	}
	key := expectedKey(r.option, data.ProtoReflect())
	gotKey := "<none>"
	if seen.Key != nil {
		gotKey = *seen.Key
	}
	expect("key", key, gotKey)
	expect("ce_subject", key, event.Subject())
	expect("ce_type", expectedType(r.option, data.ProtoReflect()), event.Type())
	if !strings.HasPrefix(event.ID(), r.option.GetSource()+":") {
		violate("ce_id %s does not name its source %s", event.ID(), r.option.GetSource())
	}
}

// expectedKey is the value at key_field, or the source when the route has none.
func expectedKey(option *optionsv1.EventRoute, m protoreflect.Message) string {
	if option.GetKeyField() == "" {
		return option.GetSource()
	}
	var value protoreflect.Value
	for _, name := range strings.Split(option.GetKeyField(), ".") {
		field := m.Descriptor().Fields().ByName(protoreflect.Name(name))
		if field == nil {
			return "<no field " + option.GetKeyField() + ">"
		}
		value = m.Get(field)
		if field.Message() != nil {
			m = value.Message()
		}
	}
	return value.String()
}

// expectedType is the route's ce_type, plus ".<action>" when the event has one.
func expectedType(option *optionsv1.EventRoute, m protoreflect.Message) string {
	if field := m.Descriptor().Fields().ByName("action"); field != nil && m.Get(field).String() != "" {
		return option.GetCeType() + "." + m.Get(field).String()
	}
	return option.GetCeType()
}
