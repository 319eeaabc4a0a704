// Drives an XForm in JavaRosa, the engine of ODK Collect and KoboCollect, as Collect would.
//
// The same protocol as tests/webforms/run.mjs (the ODK Web Forms driver), so one scenario runs in
// both engines: reads {"form": "<path of the .xml>", "scenarios": [[step, ...], ...]} on standard
// input and writes {"load": {...}, "scenarios": [[observation, ...], ...]} on standard output.
// Each scenario starts from a new instance of the form. Steps:
//   {"op": "set", "path": "/tip_victims/intro/consent", "value": "yes"}   (a select takes
//        space-separated choice names; an empty value clears)
//   {"op": "state", "path": ...}     -> {relevant, required, value, valid, violation, options, label}
//   {"op": "language", "label": "French (fr)"}
//   {"op": "payload"}                -> {status, violations, xml}
//
// JavaRosa ships inside pyxform's ODK Validate jar (with Jackson, used here to read and write JSON);
// the tests compile this file against that jar.
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.ByteArrayInputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.javarosa.core.model.Constants;
import org.javarosa.core.model.FormDef;
import org.javarosa.core.model.FormIndex;
import org.javarosa.core.model.SelectChoice;
import org.javarosa.core.model.ValidateOutcome;
import org.javarosa.core.model.data.DateData;
import org.javarosa.core.model.data.IAnswerData;
import org.javarosa.core.model.data.IntegerData;
import org.javarosa.core.model.data.SelectMultiData;
import org.javarosa.core.model.data.SelectOneData;
import org.javarosa.core.model.data.StringData;
import org.javarosa.core.model.data.helper.Selection;
import org.javarosa.core.model.instance.InstanceInitializationFactory;
import org.javarosa.core.model.utils.DateUtils;
import org.javarosa.core.services.IPropertyManager;
import org.javarosa.core.services.PropertyManager;
import org.javarosa.core.services.properties.IPropertyRules;
import org.javarosa.form.api.FormEntryController;
import org.javarosa.form.api.FormEntryModel;
import org.javarosa.form.api.FormEntryPrompt;
import org.javarosa.model.xform.XFormSerializingVisitor;
import org.javarosa.xform.util.XFormUtils;

public final class Driver {
    private static final ObjectMapper JSON = new ObjectMapper();

    private final FormDef form;
    private final FormEntryController controller;
    private final FormEntryModel model;
    private final Map<String, FormIndex> indexByPath = new LinkedHashMap<>();

    private Driver(byte[] xml) throws Exception {
        // Each scenario parses the form afresh, as Collect opens a new blank form.
        form = XFormUtils.getFormFromInputStream(new ByteArrayInputStream(xml));
        form.initialize(true, new InstanceInitializationFactory());
        model = new FormEntryModel(form);
        controller = new FormEntryController(model);
        FormIndex index = model.incrementIndex(FormIndex.createBeginningOfFormIndex(), true);
        while (!index.isEndOfFormIndex()) {
            indexByPath.put(index.getReference().toString(false), index);
            index = model.incrementIndex(index, true);
        }
    }

    public static void main(String[] args) throws Exception {
        // JavaRosa logs through slf4j and may print to standard output: keep it for the JSON answer.
        PrintStream out = new PrintStream(System.out, true, StandardCharsets.UTF_8);
        System.setOut(new PrintStream(System.err, true, StandardCharsets.UTF_8));
        // Collect answers the deviceid preload from its own settings; JavaRosa's default reads a
        // property store this driver has no use for.
        PropertyManager.setPropertyManager(new DeviceProperties());
        JsonNode request = JSON.readTree(System.in);
        byte[] xml = Files.readAllBytes(Path.of(request.get("form").asText()));
        ObjectNode output = JSON.createObjectNode();
        ObjectNode load = output.putObject("load");
        ArrayNode scenarios = output.putArray("scenarios");
        try {
            Driver first = new Driver(xml);
            List<String> warnings = first.form.getParseWarnings();
            load.put("status", "success");
            if (warnings == null || warnings.isEmpty()) {
                load.putNull("warnings");
            } else {
                load.set("warnings", JSON.valueToTree(warnings));
            }
            load.putNull("error");
        } catch (Exception error) {
            load.put("status", "failure");
            load.putNull("warnings");
            load.put("error", error.toString());
            out.print(JSON.writeValueAsString(output));
            return;
        }
        for (JsonNode steps : request.get("scenarios")) {
            scenarios.add(new Driver(xml).run(steps));
        }
        out.print(JSON.writeValueAsString(output));
    }

    private ArrayNode run(JsonNode steps) throws Exception {
        ArrayNode results = JSON.createArrayNode();
        for (JsonNode step : steps) {
            String op = step.get("op").asText();
            FormIndex index = null;
            if (step.has("path")) {
                index = indexByPath.get(step.get("path").asText());
                if (index == null) {
                    results.addObject().put("error", "no node " + step.get("path").asText());
                    continue;
                }
            }
            switch (op) {
                case "set" -> results.add(set(index, step.get("value").asText()));
                case "state" -> results.add(observe(index));
                case "language" -> results.add(language(step.get("label").asText()));
                case "payload" -> results.add(payload());
                default -> results.addObject().put("error", "unknown step " + op);
            }
        }
        return results;
    }

    /** Answers as Collect does on leaving the question: a refused answer is kept, as in a draft. */
    private ObjectNode set(FormIndex index, String value) {
        if (model.getEvent(index) != FormEntryController.EVENT_QUESTION) {
            return JSON.createObjectNode().put("error", "not a question: " + index.getReference());
        }
        IAnswerData answer = answerFor(model.getQuestionPrompt(index), value);
        if (controller.answerQuestion(index, answer, true) != FormEntryController.ANSWER_OK) {
            controller.saveAnswer(index, answer, true);
        }
        return observe(index);
    }

    private IAnswerData answerFor(FormEntryPrompt prompt, String value) {
        if (value.isEmpty()) {
            return null;
        }
        switch (prompt.getDataType()) {
            case Constants.DATATYPE_CHOICE:
                return new SelectOneData(selection(prompt, value));
            case Constants.DATATYPE_CHOICE_LIST: {
                List<Selection> selections = new ArrayList<>();
                for (String name : value.split(" ")) {
                    selections.add(selection(prompt, name));
                }
                return new SelectMultiData(selections);
            }
            case Constants.DATATYPE_INTEGER:
                return new IntegerData(Integer.parseInt(value));
            case Constants.DATATYPE_DATE:
                return new DateData(DateUtils.parseDate(value));
            default:
                return new StringData(value);
        }
    }

    /** The offered choice of that name; a name the choice filter hides is answered as typed. */
    private static Selection selection(FormEntryPrompt prompt, String name) {
        for (SelectChoice choice : prompt.getSelectChoices()) {
            if (choice.getValue().equals(name)) {
                return choice.selection();
            }
        }
        return new Selection(name);
    }

    private ObjectNode observe(FormIndex index) {
        ObjectNode result = JSON.createObjectNode();
        boolean relevant = model.isIndexRelevant(index);
        result.put("relevant", relevant);
        if (model.getEvent(index) != FormEntryController.EVENT_QUESTION) {
            result.put("required", false).put("value", "").put("valid", true);
            result.putNull("violation").putNull("message");
            result.putArray("options");
            result.putArray("option_labels");
            result.put("label", model.getCaptionPrompt(index).getLongText());
            return result;
        }
        FormEntryPrompt prompt = model.getQuestionPrompt(index);
        IAnswerData answer = prompt.getAnswerValue();
        // FormEntryController.answerQuestion's own checks, in its order.
        String violation = null;
        if (relevant && prompt.isRequired() && answer == null) {
            violation = "required";
        } else if (relevant && answer != null && !form.evaluateConstraint(index.getReference(), answer)) {
            violation = "constraint";
        }
        result.put("required", prompt.isRequired());
        result.put("value", answer == null ? "" : answer.uncast().getString());
        result.put("valid", violation == null);
        result.put("violation", violation);
        result.put("message", "constraint".equals(violation) ? prompt.getConstraintText() : null);
        ArrayNode options = result.putArray("options");
        ArrayNode labels = result.putArray("option_labels");
        List<SelectChoice> choices = prompt.getSelectChoices();
        if (choices != null) {
            for (SelectChoice choice : choices) {
                options.add(choice.getValue());
                labels.add(prompt.getSelectChoiceText(choice));
            }
        }
        result.put("label", prompt.getLongText());
        return result;
    }

    private ObjectNode language(String label) {
        for (String known : model.getLanguages()) {
            if (known.equals(label)) {
                controller.setLanguage(label);
                return JSON.createObjectNode().put("language", model.getLanguage());
            }
        }
        return JSON.createObjectNode().put("error", "no language " + label);
    }

    /** Finalises the form as Collect's "Finalize" does, then serialises the instance it sends. */
    private ObjectNode payload() throws Exception {
        ObjectNode result = JSON.createObjectNode();
        ValidateOutcome outcome = form.validate(true);
        ArrayNode violations = JSON.createArrayNode();
        if (outcome != null && outcome.failedPrompt != null) {
            violations.add(outcome.failedPrompt.getReference().toString(false));
        }
        controller.finalizeFormEntry();
        byte[] xml = new XFormSerializingVisitor().serializeInstance(form.getInstance());
        result.put("status", violations.isEmpty() ? "ready" : "invalid");
        result.set("violations", violations);
        result.put("xml", new String(xml, StandardCharsets.UTF_8));
        return result;
    }

    /** The device properties Collect gives the ``deviceid``, ``username``... preloads: one fixed id. */
    private static final class DeviceProperties implements IPropertyManager {
        @Override
        public List<String> getProperty(String name) {
            String value = getSingularProperty(name);
            return value == null ? null : List.of(value);
        }

        @Override
        public String getSingularProperty(String name) {
            return "deviceid".equals(name) ? "javarosa-driver" : null;
        }

        @Override
        public void setProperty(String name, String value) {}

        @Override
        public void setProperty(String name, List<String> values) {}

        @Override
        public void addRules(IPropertyRules rules) {}

        @Override
        public List<IPropertyRules> getRules() {
            return List.of();
        }
    }
}
